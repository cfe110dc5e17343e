#!/usr/bin/env python3
"""Reference values for isobar's derived metrics, computed with MetPy.

Prints a CSV to standard output. The output is deterministic: a fixed input
grid in a fixed order, every value rounded to 3 decimals, an empty cell where
MetPy marks a metric as undefined.

    python3 scripts/reference/metpy_reference.py \
        > src/domain/testdata/reference_derived.csv
    python3 scripts/reference/metpy_reference.py --sea-level \
        > src/domain/testdata/reference_sea_level_pressure.csv

See scripts/reference/README.md for what each column means and which MetPy
version produced the checked-in files.
"""

import argparse
import sys

import numpy as np
import metpy
import metpy.calc as mpcalc
from metpy.units import units

TEMPERATURES_C = list(range(-30, 46, 5))  # -30 .. 45 step 5 (16 values)
HUMIDITIES_PCT = [10, 30, 50, 70, 90, 100]
WIND_SPEEDS_MS = [0, 2, 5, 10, 20]

STATION_PRESSURES_HPA = [700, 850, 950, 1000]
ELEVATIONS_M = [0, 100, 500, 1500, 3000]
SLP_TEMPERATURES_C = [-20, 0, 15, 30]

# Standard lapse rate (K/m) and the exponent g / (Rd * lapse) rounded as in
# the WMO / NWS hypsometric reduction; the same constants as isobar's
# sea_level_pressure_hpa.
LAPSE_RATE = 0.0065
SLP_EXPONENT = 5.257


def fmt(value):
    """Format a number with 3 decimals; None or NaN gives an empty cell."""
    if value is None or not np.isfinite(value):
        return ""
    text = f"{round(float(value), 3):.3f}"
    return "0.000" if text == "-0.000" else text


def values_or_none(quantity, unit):
    """Magnitudes of a (possibly masked) quantity, None where masked."""
    magnitude = quantity.to(unit).magnitude
    data = np.ma.getdata(magnitude).astype(float)
    mask = np.ma.getmaskarray(magnitude)
    return [None if m else float(v) for v, m in zip(np.atleast_1d(data), np.atleast_1d(mask))]


def derived_rows():
    grid = [(t, rh, ws) for t in TEMPERATURES_C for rh in HUMIDITIES_PCT for ws in WIND_SPEEDS_MS]
    temperature = units.Quantity(np.array([g[0] for g in grid], dtype=float), "degC")
    humidity = units.Quantity(np.array([g[1] for g in grid], dtype=float), "percent")
    speed = units.Quantity(np.array([g[2] for g in grid], dtype=float), "m/s")

    dew_point = mpcalc.dewpoint_from_relative_humidity(temperature, humidity)
    heat_index = mpcalc.heat_index(temperature, humidity, mask_undefined=True)
    wind_chill = mpcalc.windchill(temperature, speed, mask_undefined=True)
    apparent = mpcalc.apparent_temperature(temperature, humidity, speed, mask_undefined=False)

    columns = [
        values_or_none(dew_point, "degC"),
        values_or_none(heat_index, "degC"),
        values_or_none(wind_chill, "degC"),
        values_or_none(apparent, "degC"),
    ]
    for i, (t, rh, ws) in enumerate(grid):
        yield [str(t), str(rh), str(ws)] + [fmt(col[i]) for col in columns]


def sea_level_pressure_hpa(station_pressure_hpa, elevation_m, temperature_c):
    """Hypsometric reduction to sea level with a 6.5 K/km lapse rate.

    MetPy has no function that reduces station pressure to sea level this way
    (its altimeter_to_sea_level_pressure starts from an altimeter setting and
    uses an isothermal column at the station temperature), so the standard
    formula is evaluated here:
        p0 = p * (1 - 0.0065 h / (T + 0.0065 h + 273.15)) ** -5.257
    """
    ratio = 1.0 - LAPSE_RATE * elevation_m / (temperature_c + LAPSE_RATE * elevation_m + 273.15)
    return station_pressure_hpa * ratio ** -SLP_EXPONENT


def sea_level_rows():
    for p in STATION_PRESSURES_HPA:
        for h in ELEVATIONS_M:
            for t in SLP_TEMPERATURES_C:
                yield [str(p), str(h), str(t), fmt(sea_level_pressure_hpa(p, h, t))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sea-level",
        action="store_true",
        help="print the sea-level pressure table instead of the derived metrics",
    )
    parser.add_argument(
        "--version", action="store_true", help="print the MetPy version in use and exit"
    )
    args = parser.parse_args()

    if args.version:
        print(metpy.__version__)
        return

    out = sys.stdout
    if args.sea_level:
        out.write("station_pressure_hpa,elevation_m,temperature_c,sea_level_pressure_hpa\n")
        rows = sea_level_rows()
    else:
        out.write(
            "temperature_c,humidity_pct,wind_speed_ms,dew_point_c,"
            "heat_index_c,wind_chill_c,apparent_temperature_c\n"
        )
        rows = derived_rows()
    for row in rows:
        out.write(",".join(row) + "\n")


if __name__ == "__main__":
    main()
