import type { ConnectionStatus } from '../lib/live';
import type { Prefs } from '../lib/prefs';
import { routeHref, type Route } from '../lib/route';

interface Props {
  status: ConnectionStatus;
  dropped: number;
  now: number;
  route: Route;
  prefs: Prefs;
  onPrefs: (p: Prefs) => void;
  firing: number;
}

const LABELS = {
  connecting: 'Connecting',
  live: 'Live',
  reconnecting: 'Reconnecting',
} as const;

function retryText(status: ConnectionStatus, now: number): string | null {
  if (status.state !== 'reconnecting' || status.retryAt === null) return null;
  const s = Math.max(0, Math.ceil((status.retryAt - now) / 1000));
  return s > 0 ? `in ${s} s` : 'now';
}

const NAV: readonly { route: Route; label: string }[] = [
  { route: { view: 'overview' }, label: 'Overview' },
  { route: { view: 'alerts' }, label: 'Alerts' },
  { route: { view: 'system' }, label: 'System' },
];

export function Header({ status, dropped, now, route, prefs, onPrefs, firing }: Props) {
  const retry = retryText(status, now);
  return (
    <header className="app-header">
      <div className="brand-nav">
        <h1 className="brand">
          <a href="#/">isobar</a>
        </h1>
        <nav aria-label="Views">
          {NAV.map((n) => {
            const current = n.route.view === route.view || (n.route.view === 'overview' && route.view === 'station');
            return (
              <a key={n.label} href={routeHref(n.route)} aria-current={current ? 'page' : undefined}>
                {n.label}
                {n.route.view === 'alerts' && firing > 0 && (
                  <span className="count" aria-label={`${firing} firing`}>
                    {firing}
                  </span>
                )}
              </a>
            );
          })}
        </nav>
      </div>
      <div className="header-status">
        {dropped > 0 && (
          <span
            className="overflow"
            title="The server skipped updates because this page could not keep up. Values catch up with the next readings."
          >
            {dropped.toLocaleString()} {dropped === 1 ? 'update' : 'updates'} skipped
          </span>
        )}
        <button
          type="button"
          className="toggle"
          onClick={() => onPrefs({ ...prefs, units: prefs.units === 'metric' ? 'imperial' : 'metric' })}
          // The visible symbol starts the name (WCAG 2.5.3, label in name).
          aria-label={`${prefs.units === 'metric' ? '°C' : '°F'}: ${prefs.units} units. Switch to ${
            prefs.units === 'metric' ? 'imperial' : 'metric'
          }`}
          data-testid="units-toggle"
        >
          {prefs.units === 'metric' ? '°C' : '°F'}
        </button>
        <button
          type="button"
          className="toggle"
          onClick={() => onPrefs({ ...prefs, theme: prefs.theme === 'dark' ? 'light' : 'dark' })}
          aria-label={`Theme: ${prefs.theme}. Switch to ${prefs.theme === 'dark' ? 'light' : 'dark'}`}
          data-testid="theme-toggle"
        >
          {prefs.theme === 'dark' ? '☾' : '☀'}
        </button>
        <span className={`conn conn-${status.state}`} role="status" aria-live="polite" data-testid="connection">
          <span className="conn-dot" aria-hidden="true" />
          <span>{LABELS[status.state]}</span>
          {retry !== null && (
            <span className="muted" aria-hidden="true">
              {retry}
            </span>
          )}
        </span>
      </div>
    </header>
  );
}
