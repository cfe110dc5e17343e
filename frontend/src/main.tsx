import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { App } from './App';
import { parseApiOrigin, setApiOrigin } from './lib/urls';

declare global {
  interface Window {
    /** Set by `config.js`, next to index.html (see frontend/README.md). */
    isobarConfig?: { apiOrigin?: unknown };
  }
}

let configError: string | null = null;
try {
  setApiOrigin(parseApiOrigin(window.isobarConfig?.apiOrigin));
} catch (err) {
  configError = err instanceof Error ? err.message : String(err);
}

const root = document.getElementById('root');
if (root === null) throw new Error('missing #root element');

createRoot(root).render(
  <StrictMode>
    <App configError={configError} />
  </StrictMode>,
);
