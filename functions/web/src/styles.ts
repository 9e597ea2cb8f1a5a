import { createHash } from 'node:crypto';

/**
 * The page's only stylesheet, served from `/styles.css` so the CSP needs no 'unsafe-inline'.
 * Colours meet WCAG AA: body text is above 12:1 and the button above 9:1 in both schemes,
 * the focus ring above 3:1 against the background.
 */
export const stylesheet = `:root {
  color-scheme: light dark;
  --background: #f6f5f1;
  --surface: #ffffff;
  --text: #1c1c1e;
  --muted: #4a4a4f;
  --border: #8a8a90;
  --accent: #0b3d91;
  --accent-text: #ffffff;
  --focus: #b34700;
}
@media (prefers-color-scheme: dark) {
  :root {
    --background: #121214;
    --surface: #1e1e22;
    --text: #f2f2f4;
    --muted: #c4c4cc;
    --border: #8a8a94;
    --accent: #9cc2ff;
    --accent-text: #0b1a33;
    --focus: #ffb366;
  }
}
*, *::before, *::after { box-sizing: border-box; }
html { font-size: 100%; }
body {
  margin: 0;
  min-height: 100vh;
  background: var(--background);
  color: var(--text);
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  line-height: 1.5;
}
main {
  max-width: 36rem;
  margin: 0 auto;
  padding: 3rem 1.25rem;
}
h1 {
  margin: 0 0 1.5rem;
  font-size: 1.25rem;
  font-weight: 600;
  letter-spacing: 0.08em;
  text-transform: uppercase;
  color: var(--muted);
}
.identity, .notice {
  background: var(--surface);
  border: 1px solid var(--border);
  border-radius: 0.75rem;
  padding: 1.5rem;
  margin-bottom: 2rem;
}
.full-name {
  margin: 0 0 1rem;
  font-size: clamp(2rem, 8vw, 3rem);
  font-weight: 700;
  line-height: 1.15;
  overflow-wrap: anywhere;
}
.details {
  display: grid;
  grid-template-columns: max-content 1fr;
  gap: 0.25rem 1rem;
  margin: 0;
}
.details dt { color: var(--muted); }
.details dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
.notice h2 { margin-top: 0; font-size: 1.5rem; }
form {
  display: flex;
  flex-wrap: wrap;
  align-items: flex-end;
  gap: 1rem;
}
.field { display: flex; flex-direction: column; gap: 0.25rem; }
label { font-weight: 600; }
select, button, .button {
  font: inherit;
  min-height: 2.75rem;
  border-radius: 0.5rem;
}
select {
  padding: 0.5rem 0.75rem;
  color: var(--text);
  background: var(--surface);
  border: 1px solid var(--border);
}
button, .button {
  display: inline-flex;
  align-items: center;
  padding: 0.5rem 1.25rem;
  color: var(--accent-text);
  background: var(--accent);
  border: 2px solid var(--accent);
  font-weight: 600;
  text-decoration: none;
  cursor: pointer;
}
button:hover, .button:hover { text-decoration: underline; }
a { color: var(--accent); }
:focus-visible {
  outline: 3px solid var(--focus);
  outline-offset: 3px;
}
`;

/** Short content hash; the page links `/styles.css?v=<hash>` so a new stylesheet is fetched. */
export const stylesheetVersion = createHash('sha256').update(stylesheet).digest('hex').slice(0, 12);

/** Where the page links the stylesheet. */
export const stylesheetHref = `/styles.css?v=${stylesheetVersion}`;
