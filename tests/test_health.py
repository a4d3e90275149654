from server.db import get_db, make_engine
from server.queue import get_queue
from tests.servers import free_port


def test_healthz_reports_database_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "checks": {"database": {"ok": True}, "redis": {"ok": True},
                                                        "delivery": {"ok": True}}}


def test_healthz_is_503_when_redis_is_down(app, client):
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    get_queue(app).close()  # reconnect to the dead address
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["redis"]["ok"] is False
    assert response.json["checks"]["database"]["ok"] is True


def test_healthz_is_503_when_the_database_is_down(app, client):
    db = get_db(app)
    db.engine.dispose()
    db.engine = make_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/gone")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["database"]["ok"] is False
    assert response.json["checks"]["redis"]["ok"] is True
