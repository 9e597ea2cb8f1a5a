import type { Gender, Identity } from './api-client.ts';
import { stylesheetHref } from './styles.ts';

/** The gender choice on the form; "any" leaves the gender to chance. */
export type GenderChoice = Gender | 'any';

const choices: readonly { value: GenderChoice; label: string }[] = [
  { value: 'any', label: 'Any' },
  { value: 'female', label: 'Female' },
  { value: 'male', label: 'Male' },
];

const genderLabels: Record<Gender, string> = { female: 'Female', male: 'Male' };

const entities: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/**
 * Escapes text for HTML content and quoted attribute values.
 * @example escapeHtml('<b>"Bond"</b>') // '&lt;b&gt;&quot;Bond&quot;&lt;/b&gt;'
 */
export const escapeHtml = (value: string) => value.replace(/[&<>"']/g, (c) => entities[c] ?? c);

const htmlDocument = (title: string, body: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="${escapeHtml(stylesheetHref)}">
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;

const genderForm = (selected: GenderChoice) => `<form method="get" action="/">
<div class="field">
<label for="gender">Gender</label>
<select id="gender" name="gender">
${choices
  .map(
    ({ value, label }) =>
      `<option value="${escapeHtml(value)}"${value === selected ? ' selected' : ''}>${escapeHtml(label)}</option>`,
  )
  .join('\n')}
</select>
</div>
<button type="submit">Give me another identity</button>
</form>`;

/**
 * The page with a new identity and the form asking for another one. Works without JavaScript.
 * @example identityPage({ firstName: 'Ada', lastName: 'Lovelace', fullName: 'Ada Lovelace', gender: 'female' }, 'any')
 */
export const identityPage = (identity: Identity, selected: GenderChoice) =>
  htmlDocument(
    'Your secret identity',
    `<h1>Your secret identity</h1>
<section class="identity" aria-label="Identity">
<p class="full-name">${escapeHtml(identity.fullName)}</p>
<dl class="details">
<dt>First name</dt>
<dd>${escapeHtml(identity.firstName)}</dd>
<dt>Last name</dt>
<dd>${escapeHtml(identity.lastName)}</dd>
<dt>Gender</dt>
<dd>${escapeHtml(genderLabels[identity.gender] ?? identity.gender)}</dd>
</dl>
</section>
${genderForm(selected)}`,
  );

/** The friendly page shown (with 503) when the API cannot hand out an identity. */
export const unavailablePage = (selected: GenderChoice) => {
  const retry = selected === 'any' ? '/' : `/?${new URLSearchParams({ gender: selected })}`;
  return htmlDocument(
    'Identity forger unavailable',
    `<h1>Your secret identity</h1>
<section class="notice" aria-labelledby="notice-title">
<h2 id="notice-title">Our identity forger is out of the office</h2>
<p>We could not forge a new identity just now. Nothing is wrong on your side; please try again in a few seconds.</p>
<p><a class="button" href="${escapeHtml(retry)}">Try again</a></p>
</section>`,
  );
};

/** What a browser sees for a bad request or an unknown path: the cause and a way back. */
export const errorPage = (status: number, title: string, detail: string) =>
  htmlDocument(
    `${status} ${title}`,
    `<h1>Your secret identity</h1>
<section class="notice" aria-labelledby="notice-title">
<h2 id="notice-title">${escapeHtml(`${status} ${title}`)}</h2>
<p>${escapeHtml(detail)}</p>
<p><a class="button" href="/">Get a new identity</a></p>
</section>`,
  );
