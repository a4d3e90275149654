import re

from server.api.spec import flask_rule


def test_every_api_route_is_in_the_spec(app, client):
    spec = client.get("/api/v1/openapi.json").json
    documented = {(method.upper(), flask_rule(path)) for path, ops in spec["paths"].items() for method in ops}
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(("/api/v1", "/v1/"))  # /v1/: the Segment-compatible ingest
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes - documented == set(), "routes missing from /api/v1/openapi.json"
    assert documented - routes == set(), "spec documents routes that do not exist"


def test_spec_is_openapi_3_with_bearer_auth(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    ops = [op for path in spec["paths"].values() for op in path.values()]
    assert all("security" in op for op in ops if op["operationId"] != "get_openapi_json")
    assert {op["x-scope"] for op in ops if "x-scope" in op} == {"ingest", "admin"}
    assert all(re.match(r"^[a-z_0-9]+$", op["operationId"]) for op in ops)


def test_unknown_api_path_and_method_are_problem_json(client):
    missing = client.get("/api/v1/nope")
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    wrong = client.put("/api/v1/events")
    assert (
        wrong.status_code == 405 and wrong.mimetype == "application/problem+json" and "POST" in wrong.headers["Allow"]
    )
