-- questdb benchmark load for wrk: one script for every scenario of bench/scenarios.py.
--
--   wrk -t2 -c16 -d10s -s bench/lua/bench.lua http://127.0.0.1:PORT -- SCENARIO SAMPLES_DIR LIMIT TAG
--
-- SCENARIO   a name from bench/scenarios.py (user_id, ..., mix)
-- SAMPLES_DIR  directory of the sample files (one key a line) that bench.dataset writes
-- LIMIT      use only the first LIMIT keys of each file (the warm hot set); 0 = every key
-- TAG        a short run tag that makes created character names unique across runs
-- The API key comes from the BENCH_API_KEY environment variable. Each request draws a random key.
-- done() prints one line "BENCH_RESULT {json}" with the request count, errors and latency percentiles.

local scenario, samples_dir, limit, tag
local keys = {}
local counter = 0
local plain_headers, json_headers
local build

local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
end

local function load(name, max)
  if keys[name] then
    return keys[name]
  end
  local list, n = {}, 0
  for line in io.lines(samples_dir .. "/" .. name .. ".txt") do
    if line ~= "" then
      n = n + 1
      list[n] = line
      if max > 0 and n >= max then
        break
      end
    end
  end
  assert(n > 0, "no keys in " .. name)
  keys[name] = list
  return list
end

local function pick(name)
  local list = keys[name]
  return list[math.random(#list)]
end

local letters = "abcdefghijklmnopqrstuvwxyz"
local batch_size = 50 -- bench/scenarios.py BATCH_SIZE

local function unique_name()
  counter = counter + 1
  local a, b = math.random(26), math.random(26)
  -- "n" + tag (3) + thread number + counter + 2 random letters: at most 16 characters.
  return string.format("n%s%d%d%s%s", tag, thread_number or 0, counter, letters:sub(a, a), letters:sub(b, b))
end

local builders = {
  user_id = function()
    return wrk.format("GET", "/api/v1/users/" .. pick("user_ids") .. "/", plain_headers)
  end,
  user_username = function()
    return wrk.format("GET", "/api/v1/users/by-username/" .. pick("usernames") .. "/", plain_headers)
  end,
  user_email = function()
    return wrk.format("GET", "/api/v1/users/by-email/" .. pick("emails") .. "/", plain_headers)
  end,
  character_id = function()
    return wrk.format("GET", "/api/v1/characters/" .. pick("character_ids") .. "/", plain_headers)
  end,
  character_list = function()
    return wrk.format("GET", "/api/v1/characters/?user=" .. pick("list_user_ids"), plain_headers)
  end,
  character_batch = function()
    local ids = {}
    for i = 1, batch_size do
      ids[i] = '"' .. pick("character_ids") .. '"'
    end
    return wrk.format("POST", "/api/v1/characters/batch/", json_headers, '{"ids":[' .. table.concat(ids, ",") .. "]}")
  end,
  session_lookup = function()
    local body = '{"token":"' .. pick("session_tokens") .. '"}'
    return wrk.format("POST", "/api/v1/sessions/lookup/", json_headers, body)
  end,
  session_refresh = function()
    return wrk.format("POST", "/api/v1/sessions/" .. pick("session_ids") .. "/refresh/", json_headers, "")
  end,
  character_patch = function()
    local body = '{"money":' .. math.random(0, 1000000) .. "}"
    return wrk.format("PATCH", "/api/v1/characters/" .. pick("character_ids") .. "/", json_headers, body)
  end,
  character_create = function()
    local body = '{"user":"' .. pick("create_user_ids") .. '","name":"' .. unique_name() .. '"}'
    return wrk.format("POST", "/api/v1/characters/", json_headers, body)
  end,
}

-- Percent shares of the mix (bench/scenarios.py MIX): 90% reads, 10% writes.
local mix = {
  { 20, "user_id" },
  { 15, "user_username" },
  { 20, "character_id" },
  { 15, "character_list" },
  { 20, "session_lookup" },
  { 5, "character_patch" },
  { 3, "session_refresh" },
  { 2, "character_create" },
}

builders.mix = function()
  local roll = math.random(100)
  for _, entry in ipairs(mix) do
    roll = roll - entry[1]
    if roll <= 0 then
      return builders[entry[2]]()
    end
  end
  return builders.user_id()
end

-- The sample files each scenario reads; create draws owners from every user with room for more characters.
local files = {
  user_id = { "user_ids" },
  user_username = { "usernames" },
  user_email = { "emails" },
  character_id = { "character_ids" },
  character_batch = { "character_ids" },
  character_list = { "list_user_ids" },
  session_lookup = { "session_tokens" },
  session_refresh = { "session_ids" },
  character_patch = { "character_ids" },
  character_create = { "create_user_ids" },
  mix = { "user_ids", "usernames", "character_ids", "list_user_ids", "session_tokens", "session_ids", "create_user_ids" },
}

function init(args)
  scenario, samples_dir, limit, tag = args[1], args[2], tonumber(args[3]) or 0, args[4] or "x"
  assert(builders[scenario], "unknown scenario " .. tostring(scenario))
  math.randomseed(os.time() * 1000 + (thread_number or 0) * 7919)
  local key = os.getenv("BENCH_API_KEY")
  assert(key and key ~= "", "BENCH_API_KEY is not set")
  plain_headers = { ["Authorization"] = "Api-Key " .. key }
  json_headers = { ["Authorization"] = "Api-Key " .. key, ["Content-Type"] = "application/json" }
  for _, name in ipairs(files[scenario]) do
    load(name, name == "create_user_ids" and 0 or limit)
  end
  build = builders[scenario]
end

function request()
  return build()
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(
    string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,'
        .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
        .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
      summary.requests,
      summary.duration,
      summary.bytes,
      e.connect,
      e.read,
      e.write,
      e.status,
      e.timeout,
      latency.min,
      latency.mean,
      latency.stdev,
      latency.max,
      latency:percentile(50),
      latency:percentile(90),
      latency:percentile(99),
      latency:percentile(99.9)
    )
  )
end
