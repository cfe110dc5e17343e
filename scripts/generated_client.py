"""Uses every endpoint of a running daemon through a Python client generated
from its own OpenAPI document (openapi-python-client), and checks that each
answer parses into the generated types.

    python3 scripts/generated_client.py BASE_URL CLIENT_DIR

CLIENT_DIR holds the package `openapi-python-client generate` wrote. Every
operation the generated client has must be called here: a new endpoint
without a call fails the check. The websocket (`live`) is the exception:
the generated client speaks HTTP only; its handshake is checked for the
documented refusal instead.
"""

import datetime
import importlib
import pkgutil
import sys
import time


def main(base, client_dir):
    sys.path.insert(0, client_dir)
    api = importlib.import_module("gen.api")
    client_mod = importlib.import_module("gen.client")
    models = importlib.import_module("gen.models")

    generated = set()
    for tag in pkgutil.iter_modules(api.__path__):
        tag_mod = importlib.import_module(f"gen.api.{tag.name}")
        for op in pkgutil.iter_modules(tag_mod.__path__):
            generated.add(op.name)

    client = client_mod.Client(base_url=base, raise_on_unexpected_status=True, timeout=30)
    authed = client_mod.AuthenticatedClient(base_url=base, token="unused-open-uploads", timeout=30)

    def op(name):
        for tag in pkgutil.iter_modules(api.__path__):
            try:
                return importlib.import_module(f"gen.api.{tag.name}.{name}")
            except ModuleNotFoundError:
                continue
        raise SystemExit(f"generated client has no operation {name}")

    called = set()

    def call(name, expect, *args, client=client, **kwargs):
        response = op(name).sync_detailed(*args, client=client, **kwargs)
        called.add(name)
        if response.status_code != expect:
            raise SystemExit(f"{name}: status {response.status_code}, expected {expect}: {response.content[:300]!r}")
        return response

    def typed(name, model, *args, **kwargs):
        parsed = call(name, 200, *args, **kwargs).parsed
        if not isinstance(parsed, getattr(models, model)):
            raise SystemExit(f"{name}: parsed as {type(parsed).__name__}, expected {model}")
        return parsed

    # Uploads first, so that the station has history to read back.
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    stamp = (now - datetime.timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    stored = typed("ingest_json", "Stored", "GEN001", client=authed,
                   body={"station_id": "GEN001", "timestamp": stamp, "temperature": 21.5, "humidity": 50.0})
    assert stored.stored == 1, stored
    typed("ingest_ecowitt", "Stored", "GEN002", client=authed,
          body=models.IngestEcowittBody.from_dict(
              {"PASSKEY": "k", "dateutc": "now", "tempf": "70.1", "humidity": "40"}))
    wu = call("ingest_wunderground", 200, client=authed, id="GEN003", dateutc="now", tempf=68.0,
              humidity=55.0, password="unused")
    assert wu.content.strip() == b"success", wu.content

    typed("health", "Liveness")
    call("ready", 200)
    metrics = call("metrics", 200)
    assert b"isobar_readings_stored_total" in metrics.content
    call("openapi_json", 200)

    stations = typed("list_stations", "StationList")
    ids = {s.station_id for s in stations.stations}
    assert "GEN001" in ids, ids
    one = typed("station", "StationView", "GEN001")
    assert one.status.value == "reporting", one.status
    latest = typed("latest_all", "LatestReadings")
    assert any(r.station_id == "GEN001" for r in latest.readings)
    reading = typed("latest", "Reading", "GEN001")
    assert reading.temperature_c == 21.5, reading
    typed("summary", "NetworkSummary")

    page = typed("readings", "ReadingPage", "GEN001", limit=10)
    assert page.readings and page.readings[-1].temperature_c == 21.5, page
    csv = call("readings_csv", 200, "GEN001")
    assert csv.content.splitlines()[0].startswith(b"station_id,observed_at"), csv.content[:100]
    # Rollups follow the readings by up to 5 s.
    deadline = time.time() + 15
    while True:
        rollups = typed("rollups", "RollupPage", "GEN001", resolution=models.Resolution("1m"))
        if rollups.rollups or time.time() > deadline:
            break
        time.sleep(0.5)
    assert rollups.rollups, "no rollup within 15 s"
    qc = typed("qc_summary", "QcSummary", "GEN001")
    assert qc.readings >= 1 and qc.fail == 0, qc
    typed("alerts", "AlertList", limit=5)
    typed("quarantine", "QuarantinePage", limit=5)
    tree = typed("supervision", "SupervisionTree")
    assert [c.name for c in tree.root.children] == ["pipeline", "stations", "ingest", "web"], tree.root

    # Errors come back as the documented ErrorBody.
    missing = call("station", 404, "NOPE404")
    assert isinstance(missing.parsed, models.ErrorBody) and missing.parsed.error == "not_found", missing.parsed
    # The websocket: a plain GET is not an upgrade, refused with 400.
    refused = call("live", 400)
    assert isinstance(refused.parsed, models.ErrorBody), refused.parsed
    # A websocket ticket (reads are open here, so any caller gets one).
    ticket = typed("ticket", "Ticket")
    assert len(ticket.ticket) == 48 and ticket.expires_in_s == 30, ticket

    left = generated - called
    if left:
        raise SystemExit(f"operations the check does not call: {sorted(left)}")
    print(f"generated client: {len(called)} operations used, answers parsed into the generated types")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
