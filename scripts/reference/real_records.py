#!/usr/bin/env python3
"""Converts real station records into isobar JSON readings for the quality
control tests (tests/data/qc/*.jsonl.gz, one reading per line).

The records are the measured-data samples that pvlib ships with its source
distribution (BSD 3-Clause; the data themselves are from public
programmes, see tests/data/qc/README.md). Only the standard library is
used: the script fetches the pvlib source distribution with pip and reads
the files directly.

    python3 scripts/reference/real_records.py [--pvlib-sdist DIR]

Times become UTC. The typical-year files (TMY2, TMY3) join months of
different years; each is set in one year (2023) so the record runs forward
in time, as the station would have sent it.
"""

import argparse
import datetime as dt
import gzip
import json
import pathlib
import subprocess
import sys
import tarfile
import tempfile

PVLIB = "pvlib==0.16.1"
OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "qc"
YEAR = 2023


def reading(station, lat, lon, elev, at, **values):
    out = {"station_id": station, "latitude": round(lat, 4), "longitude": round(lon, 4)}
    if elev is not None:
        out["elevation"] = elev
    for key, value in values.items():
        if value is not None:
            out[key] = value
    out["timestamp"] = at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def local(year, month, day, hour, minute, tz_hours):
    """Local standard time, hour 24 being the next day's 00."""
    base = dt.datetime(year, month, day, tzinfo=dt.timezone(dt.timedelta(hours=tz_hours)))
    return base + dt.timedelta(hours=hour, minutes=minute)


def tmy3(path, station):
    lines = path.read_text(encoding="latin-1").splitlines()
    meta = lines[0].split(",")
    tz, lat, lon, elev = float(meta[3]), float(meta[4]), float(meta[5]), float(meta[6])
    header = lines[1].split(",")
    col = {name: i for i, name in enumerate(header)}

    def value(row, name, missing=-9900):
        v = float(row[col[name]])
        return None if v <= missing else v

    for line in lines[2:]:
        row = line.split(",")
        month, day, _ = (int(x) for x in row[0].split("/"))
        hour, minute = (int(x) for x in row[1].split(":"))
        rh = value(row, "RHum (%)")
        yield reading(
            station, lat, lon, elev, local(YEAR, month, day, hour, minute, tz),
            temperature=value(row, "Dry-bulb (C)"),
            humidity=rh if rh is not None and rh <= 100 else None,
            pressure=value(row, "Pressure (mbar)"),
            wind_speed=value(row, "Wspd (m/s)"),
            wind_direction=value(row, "Wdir (degrees)"),
        )


def tmy2(path, station):
    lines = path.read_text(encoding="latin-1").splitlines()
    meta = lines[0].split()
    tz = float(meta[3])
    lat = (float(meta[5]) + float(meta[6]) / 60) * (1 if meta[4] == "N" else -1)
    lon = (float(meta[8]) + float(meta[9]) / 60) * (1 if meta[7] == "E" else -1)
    elev = float(meta[10])
    # Field widths from the TMY2 user's manual (NREL/SP-463-7668, table 3-2),
    # as in pvlib.iotools.read_tmy2.
    widths = [2, 2, 2, 2, 4, 4, 4] + [1, 1, 4] * 6 + [1, 1, 2, 1, 1, 2, 1, 1] + [
        4, 1, 1, 4, 1, 1, 3, 1, 1, 4, 1, 1, 3, 1, 1, 3, 1, 1]
    names = ["year", "month", "day", "hour", "etr", "etrn", "ghi"]
    for i in range(6):
        names += [f"s{i}", f"u{i}", f"v{i}"]
    names += ["ghis", "ghiu", "tot", "tots", "totu", "opq", "opqs", "opqu"]
    names += ["dry", "drys", "dryu", "dew", "dews", "dewu", "rh", "rhs", "rhu",
              "p", "ps", "pu", "wdir", "wdirs", "wdiru", "wspd", "wspds", "wspdu"]
    for line in lines[1:]:
        fields, pos = {}, 1
        for name, width in zip(names, widths):
            fields[name] = line[pos:pos + width]
            pos += width
        month, day, hour = int(fields["month"]), int(fields["day"]), int(fields["hour"])
        yield reading(
            station, lat, lon, elev, local(YEAR, month, day, hour, 0, tz),
            temperature=int(fields["dry"]) / 10,
            humidity=float(fields["rh"]),
            pressure=float(fields["p"]),
            wind_speed=int(fields["wspd"]) / 10,
            wind_direction=float(fields["wdir"]),
        )


def bsrn(path, station, lat, lon, elev):
    """Logical record 0100: two lines a minute; the second ends with air
    temperature, relative humidity and station pressure."""
    text = gzip.open(path, "rt").read().splitlines()
    month_year = text[1].split()
    month, year = int(month_year[1]), int(month_year[2])
    start = text.index("*U0100") + 1
    rows = []
    for line in text[start:]:
        if line.startswith("*"):
            break
        rows.append(line)
    for first, second in zip(rows[0::2], rows[1::2]):
        day, minute = int(first[0:3]), int(first[4:9])
        t, rh, p = second[55:64], second[64:70], second[70:75]
        at = dt.datetime(year, month, day, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=minute)
        t, rh, p = float(t), float(rh), float(p)
        yield reading(
            station, lat, lon, elev, at,
            temperature=None if t <= -99 else t,
            humidity=None if rh <= -99 else rh,
            pressure=None if p <= -999 else p,
        )


def surfrad(path, station):
    lines = path.read_text().splitlines()
    lat, lon = float(lines[1].split()[0]), -float(lines[1].split()[1])
    elev = float(lines[1].split()[2])

    def ok(value, flag):
        v = float(value)
        return None if flag != "0" or v <= -9999 else v

    for line in lines[2:]:
        f = line.split()
        year, month, day, hour, minute = (int(x) for x in (f[0], f[2], f[3], f[4], f[5]))
        at = dt.datetime(year, month, day, hour, minute, tzinfo=dt.timezone.utc)
        # temp, rh, windspd, winddir, pressure are the last five value/flag pairs.
        t, rh, ws, wd, p = (ok(f[i], f[i + 1]) for i in range(len(f) - 10, len(f), 2))
        yield reading(
            station, lat, lon, elev, at,
            temperature=t, humidity=rh, pressure=p, wind_speed=ws, wind_direction=wd,
        )


def midc_uat(path, station):
    """University of Arizona (Tucson) MIDC raw file; times are MST."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    col = {name: i for i, name in enumerate(header)}
    for line in lines[1:]:
        row = line.split(",")
        year, doy, hhmm = int(row[col["Year"]]), int(row[col["DOY"]]), int(row[col["MST"]])
        at = (dt.datetime(year, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
              + dt.timedelta(days=doy - 1, hours=hhmm // 100, minutes=hhmm % 100))

        def v(name, places):
            x = float(row[col[name]])
            return None if x <= -7999 else round(x, places)

        yield reading(
            station, 32.22969, -110.95534, 786.0, at,
            temperature=v("Air Temperature [deg C]", 2),
            humidity=v("Rel Humidity [%]", 2),
            pressure=v("Station Pressure [mBar]", 2),
            wind_speed=v("Avg Wind Speed @ 3m [m/s]", 3),
            wind_direction=v("Avg Wind Direction @ 3m [deg from N]", 1),
            wind_gust=v("Peak Wind Speed @ 3m [m/s]", 3),
        )


def write(name, readings):
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.jsonl.gz"
    count = 0
    # mtime 0: the same input gives the same bytes.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
        for r in readings:
            out.write((json.dumps(r, separators=(",", ":")) + "\n").encode())
            count += 1
    print(f"{path.relative_to(OUT.parents[2])}: {count} readings", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pvlib-sdist", type=pathlib.Path,
                        help="an unpacked pvlib source distribution (fetched with pip if absent)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.pvlib_sdist
        if root is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                            "--no-binary", ":all:", "-d", tmp, PVLIB], check=True)
            sdist = next(pathlib.Path(tmp).glob("pvlib-*.tar.gz"))
            with tarfile.open(sdist) as tar:
                tar.extractall(tmp, filter="data")
            root = next(p for p in pathlib.Path(tmp).iterdir() if p.is_dir())
        data, tests = root / "pvlib" / "data", root / "tests" / "data"
        write("greensboro-nc-hourly", tmy3(data / "723170TYA.CSV", "KGSO"))
        write("sand-point-ak-hourly", tmy3(data / "703165TY.csv", "PASD"))
        write("miami-fl-hourly", tmy2(data / "12839.tm2", "KMIA"))
        write("payerne-ch-1min", bsrn(tests / "bsrn-pay0616.dat.gz", "PAY", 46.8123, 6.9422, 491.0))
        write("alamosa-co-1min", surfrad(tests / "surfrad-slv16001.dat", "SLV"))
        write("tucson-az-1min", midc_uat(tests / "midc_raw_20181018.txt", "UAT"))


if __name__ == "__main__":
    main()
