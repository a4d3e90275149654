import pytest

from ..helpers import api_key


class Api:
    """The test client with a bearer key: ``api.get("/contacts")`` → /api/v1/contacts."""

    def __init__(self, client, key):
        self.client, self.key = client, key

    def call(self, method, path, json=None, headers=None, **kwargs):
        all_headers = {"Authorization": f"Bearer {self.key}", **(headers or {})}
        return self.client.open("/api/v1" + path, method=method, json=json, headers=all_headers, **kwargs)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.call("POST", path, json=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.call("PATCH", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.call("PUT", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


@pytest.fixture
def api(app, client):
    return Api(client, api_key(app, "admin"))


@pytest.fixture
def ingest(app, client):
    return Api(client, api_key(app, "ingest"))
