"""Admin sign-in throttling: django-axes, for sign-ins that come over HTTP."""

from axes.backends import AxesStandaloneBackend


class SignInThrottle(AxesStandaloneBackend):
    """django-axes' backend, skipped when there is no request.

    Every sign-in over HTTP (the admin's login form) passes its request and is counted and
    locked out by django-axes. `authenticate()` without a request comes from code running in
    the process (a shell, a management command, the test client's login) and is not
    something a remote client can reach, so it is not throttled rather than refused.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
