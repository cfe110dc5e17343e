import type { ConnectionStatus } from '../lib/live';

interface Props {
  status: ConnectionStatus;
  dropped: number;
  now: number;
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

export function Header({ status, dropped, now }: Props) {
  const retry = retryText(status, now);
  return (
    <header className="app-header">
      <h1 className="brand">isobar</h1>
      <div className="header-status">
        {dropped > 0 && (
          <span
            className="overflow"
            title="The server skipped updates because this page could not keep up. Values catch up with the next readings."
          >
            {dropped.toLocaleString()} {dropped === 1 ? 'update' : 'updates'} skipped
          </span>
        )}
        <span className={`conn conn-${status.state}`} role="status" aria-live="polite">
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
