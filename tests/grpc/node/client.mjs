// Runs the calls described on stdin against a questdb gRPC server and prints what came back, as JSON.
// Input: {"address": "127.0.0.1:50052", "calls": [{"service": "UserService", "method": "GetUser",
//         "request": {...}, "metadata": {"authorization": "Api-Key ..."}}]}
// Output: one answer per call: {"ok", "response" | "code", "details", "initial", "trailing"}.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const protoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "proto");
const definition = protoLoader.loadSync(
  ["questdb/v1/users.proto", "questdb/v1/characters.proto", "questdb/v1/sessions.proto"],
  { includeDirs: [protoRoot], keepCase: true, longs: Number, enums: String, defaults: false, oneofs: true },
);
const questdb = grpc.loadPackageDefinition(definition).questdb.v1;
const plan = JSON.parse(readFileSync(0, "utf8"));
const codeNames = Object.fromEntries(Object.entries(grpc.status).map(([name, value]) => [value, name]));

function plain(metadata) {
  const out = {};
  for (const [key, value] of Object.entries(metadata.getMap())) {
    if (!key.endsWith("-bin")) out[key] = String(value);
  }
  return out;
}

function call(clients, spec) {
  return new Promise((resolve) => {
    const client = clients[spec.service];
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(spec.metadata || {})) metadata.set(key, value);
    const answer = { initial: {}, trailing: {} };
    const rpc = client[spec.method](spec.request || {}, metadata, (error, response) => {
      if (error) {
        Object.assign(answer, { ok: false, code: codeNames[error.code], details: error.details });
        answer.trailing = plain(error.metadata);
      } else {
        Object.assign(answer, { ok: true, response });
      }
    });
    rpc.on("metadata", (m) => { answer.initial = plain(m); });
    rpc.on("status", (status) => {
      if (status.code === grpc.status.OK) answer.trailing = plain(status.metadata);
      setImmediate(() => resolve(answer));
    });
  });
}

const credentials = grpc.credentials.createInsecure();
const clients = {
  UserService: new questdb.UserService(plan.address, credentials),
  CharacterDbService: new questdb.CharacterDbService(plan.address, credentials),
  SessionService: new questdb.SessionService(plan.address, credentials),
};
const answers = [];
for (const spec of plan.calls) answers.push(await call(clients, spec));
console.log(JSON.stringify(answers));
for (const client of Object.values(clients)) client.close();
