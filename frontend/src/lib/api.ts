import { parseReadingsResponse, parseStationsResponse } from './protocol';
import type { Reading, Station } from './types';
import { STATIONS_PATH, readingsPath } from './urls';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

async function getJson(path: string, signal?: AbortSignal): Promise<unknown> {
  const res = await fetch(path, {
    headers: { Accept: 'application/json' },
    ...(signal ? { signal } : {}),
  });
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`.trim();
    try {
      const body: unknown = await res.json();
      if (typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string') {
        message = body.message;
      }
    } catch {
      // Not JSON; keep the status line.
    }
    throw new ApiError(res.status, message);
  }
  return res.json();
}

export async function fetchStations(signal?: AbortSignal): Promise<Station[]> {
  return parseStationsResponse(await getJson(STATIONS_PATH, signal));
}

export async function fetchReadings(
  stationId: string,
  from: Date,
  to: Date,
  limit: number,
  signal?: AbortSignal,
): Promise<Reading[]> {
  return parseReadingsResponse(await getJson(readingsPath(stationId, from, to, limit), signal));
}
