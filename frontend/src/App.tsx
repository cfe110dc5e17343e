import { useEffect, useMemo, useState, useSyncExternalStore } from 'react';
import { Header } from './components/Header';
import { StationTable } from './components/StationTable';
import { TemperatureChart } from './components/TemperatureChart';
import { useNow } from './hooks';
import { fetchStations } from './lib/api';
import { LiveConnection, type ConnectionStatus } from './lib/live';
import { sortedStations } from './lib/stations';
import { StationStore } from './lib/store';
import { liveUrl } from './lib/urls';

const initialStatus: ConnectionStatus = { state: 'connecting', attempt: 0, retryAt: null };

export function App() {
  const [store] = useState(() => new StationStore());
  const state = useSyncExternalStore(store.subscribe, store.getSnapshot);
  const [status, setStatus] = useState<ConnectionStatus>(initialStatus);
  const [loading, setLoading] = useState(true);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const now = useNow(1000);

  useEffect(() => {
    const ac = new AbortController();
    fetchStations(ac.signal).then(
      (list) => {
        store.loadStations(list);
        setLoadError(null);
        setLoading(false);
      },
      (err: unknown) => {
        if (ac.signal.aborted) return;
        setLoadError(err instanceof Error ? err.message : String(err));
        setLoading(false);
      },
    );

    const live = new LiveConnection({
      url: () => liveUrl(window.location),
      onMessage: (msg) => store.ingest(msg),
      onStatus: setStatus,
    });
    live.start();

    return () => {
      ac.abort();
      live.stop();
    };
  }, [store]);

  const stations = useMemo(() => sortedStations(state.stations), [state.stations]);
  const selectedId =
    selected !== null && state.stations.has(selected) ? selected : (stations[0]?.station_id ?? null);
  const selectedStation = selectedId === null ? undefined : state.stations.get(selectedId);
  const waiting = loading && !state.hasSnapshot;

  return (
    <>
      <Header status={status} dropped={state.dropped} now={now} />
      <main className="layout">
        {loadError !== null && !state.hasSnapshot && (
          <p className="banner" role="alert">
            Could not load stations: {loadError}
          </p>
        )}
        <TemperatureChart store={store} stationId={selectedId} latest={selectedStation?.latest ?? null} />
        <section className="panel" aria-labelledby="stations-heading">
          <div className="panel-head">
            <h2 id="stations-heading">Stations</h2>
            <span className="muted">{waiting ? 'Loading…' : `${stations.length} total`}</span>
          </div>
          {stations.length === 0 ? (
            <p className="empty">{waiting ? 'Loading stations…' : 'No stations have reported yet.'}</p>
          ) : (
            <StationTable stations={stations} selectedId={selectedId} onSelect={setSelected} now={now} />
          )}
        </section>
      </main>
    </>
  );
}
