import { useEffect, useMemo, useState, useSyncExternalStore } from 'react';
import { Header } from './components/Header';
import { PrefsContext, useNow, useRoute } from './hooks';
import { KeyPrompt } from './components/KeyPrompt';
import { ApiError, fetchAlerts, fetchLiveTicket, fetchStations } from './lib/api';
import { readKey, saveReadKey } from './lib/credential';
import { throttledFrames } from './lib/frame';
import { LiveConnection, type ConnectionStatus } from './lib/live';
import { firingCount } from './lib/overview';
import { loadPrefs, savePrefs, type Prefs } from './lib/prefs';
import { StationStore } from './lib/store';
import { apiLocation, liveUrl } from './lib/urls';
import { AlertsView } from './views/AlertsView';
import { Overview } from './views/Overview';
import { StationPage } from './views/StationPage';
import { SystemView } from './views/SystemView';

const initialStatus: ConnectionStatus = { state: 'connecting', attempt: 0, retryAt: null };
/** Past alerts loaded at start; live ones are added as they come. */
const ALERT_HISTORY = 200;
/**
 * The views follow the network at most this often; the station charts
 * follow their own readings every frame.
 */
const VIEW_INTERVAL_MS = 250;

function browserStorage(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function App({ configError = null }: { configError?: string | null }) {
  const [store] = useState(() => new StationStore(throttledFrames(VIEW_INTERVAL_MS)));
  const state = useSyncExternalStore(store.subscribe, store.getSnapshot);
  const [status, setStatus] = useState<ConnectionStatus>(initialStatus);
  const [loading, setLoading] = useState(true);
  const [loadError, setLoadError] = useState<string | null>(null);
  // The daemon protects its reads and has no key from this browser, or
  // refused the one it had.
  const [needsKey, setNeedsKey] = useState(false);
  const [alertsError, setAlertsError] = useState<string | null>(null);
  const [prefs, setPrefs] = useState<Prefs>(() =>
    loadPrefs(browserStorage(), window.matchMedia?.('(prefers-color-scheme: light)').matches ?? false),
  );
  const route = useRoute();
  const now = useNow(1000);

  useEffect(() => {
    document.documentElement.dataset.theme = prefs.theme;
    document.querySelector('meta[name="color-scheme"]')?.setAttribute('content', prefs.theme);
    savePrefs(browserStorage(), prefs);
  }, [prefs]);

  useEffect(() => {
    const ac = new AbortController();
    // The first paint comes from REST; the websocket snapshot then takes over.
    fetchStations(ac.signal).then(
      (list) => {
        store.loadStations(list);
        setLoadError(null);
        setLoading(false);
      },
      (err: unknown) => {
        if (ac.signal.aborted) return;
        if (err instanceof ApiError && err.status === 401) setNeedsKey(true);
        setLoadError(errorText(err));
        setLoading(false);
      },
    );
    const loadAlerts = () =>
      fetchAlerts(ALERT_HISTORY, ac.signal).then(
        (list) => {
          store.loadAlerts(list);
          setAlertsError(null);
        },
        (err: unknown) => {
          if (!ac.signal.aborted) setAlertsError(errorText(err));
        },
      );
    void loadAlerts();
    // After a reconnect, alerts that changed while the feed was down.
    const offSnapshot = store.onSnapshot((count) => {
      if (count > 1) void loadAlerts();
    });

    const live = new LiveConnection({
      url: () => liveUrl(apiLocation(window.location)),
      // With a key, each connection buys a one-time ticket with it.
      ...(readKey() !== null ? { ticket: fetchLiveTicket } : {}),
      onMessage: (msg) => store.ingest(msg),
      onStatus: setStatus,
    });
    live.start();

    return () => {
      ac.abort();
      offSnapshot();
      live.stop();
    };
  }, [store]);

  const firing = useMemo(() => firingCount(state.alerts.values()), [state.alerts]);
  const waiting = loading && !state.hasSnapshot;

  let view;
  switch (route.view) {
    case 'overview':
      view = <Overview state={state} rate={store.readingRate(now)} now={now} waiting={waiting} />;
      break;
    case 'station':
      view = (
        <StationPage
          key={route.stationId}
          store={store}
          stationId={route.stationId}
          station={state.stations.get(route.stationId)}
          now={now}
        />
      );
      break;
    case 'alerts':
      view = <AlertsView state={state} now={now} loadError={alertsError} />;
      break;
    case 'system':
      view = <SystemView state={state} now={now} />;
      break;
  }

  return (
    <PrefsContext.Provider value={prefs}>
      <Header
        status={status}
        dropped={state.dropped}
        now={now}
        route={route}
        prefs={prefs}
        onPrefs={setPrefs}
        firing={firing}
      />
      <main className="layout">
        {configError !== null && (
          <p className="banner" role="alert">
            The dashboard's config.js is wrong: {configError}. Using the page's own origin for the API.
          </p>
        )}
        {needsKey && (
          <KeyPrompt
            refused={readKey() !== null}
            onSave={(key) => {
              saveReadKey(key);
              window.location.reload();
            }}
          />
        )}
        {loadError !== null && !state.hasSnapshot && !needsKey && (
          <p className="banner" role="alert">
            Could not load stations: {loadError}
          </p>
        )}
        {view}
      </main>
    </PrefsContext.Provider>
  );
}
