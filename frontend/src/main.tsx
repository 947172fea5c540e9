import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { captureToken } from './api/client';
import { App } from './App';
import { EventHub } from './lib/events';
import { ImportQueue } from './lib/imports';
import './styles.css';

// Serve mode: the page is opened at /#token=...; keep the token for this tab, drop it from the URL.
captureToken();

const hub = new EventHub({ runtime: window.runtime });
const imports = new ImportQueue({ hub });

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App hub={hub} imports={imports} />
  </StrictMode>,
);
