// Small helpers of the page: text to safe parts, dates, names.

import { html } from './vendor/preact-htm.js';

const LINK = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const MENTION = /(^|[^\w@])@([\w.\-]{1,64})/g;

/** A URL if it is http(s), else null: links are made only of those. */
export function safeUrl(text) {
  try {
    const u = new URL(text);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

/** Message text as vnodes: plain text (escaped by Preact), http(s) links
 *  with rel=noopener, @mentions highlighted. Never HTML. */
export function richText(text, me) {
  if (!text) return [];
  const out = [];
  let last = 0;
  for (const m of text.matchAll(LINK)) {
    let raw = m[0].replace(/[.,;:!?)\]]+$/, '');
    if (m.index > last) out.push(...mentions(text.slice(last, m.index), me));
    const href = safeUrl(raw);
    if (href) {
      out.push(html`<a href=${href} target="_blank" rel="noopener noreferrer nofollow">${raw}</a>`);
    } else {
      out.push(raw);
    }
    last = m.index + raw.length;
  }
  if (last < text.length) out.push(...mentions(text.slice(last), me));
  return out;
}

function mentions(text, me) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(MENTION)) {
    const start = m.index + m[1].length;
    if (start > last) out.push(text.slice(last, start));
    const cls = m[2] === me ? 'mention me' : 'mention';
    out.push(html`<span class=${cls}>@${m[2]}</span>`);
    last = start + 1 + m[2].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

/** The member ids @mentioned in a text. */
export function findMentions(text, memberIds) {
  const set = new Set();
  for (const m of text.matchAll(MENTION)) {
    if (memberIds.includes(m[2])) set.add(m[2]);
  }
  return [...set];
}

export function dayKey(iso) {
  const d = new Date(iso);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function dayLabel(iso) {
  const d = new Date(iso);
  const today = new Date();
  const yesterday = new Date(Date.now() - 864e5);
  if (dayKey(d) === dayKey(today)) return 'Today';
  if (dayKey(d) === dayKey(yesterday)) return 'Yesterday';
  return d.toLocaleDateString(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
}

export function timeLabel(iso) {
  return new Date(iso).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

export function shortTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return dayKey(d) === dayKey(new Date()) ? timeLabel(iso)
    : d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
}

export function sizeLabel(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** The claims of a JWT, unverified (the server checks it): for sub/exp. */
export function jwtClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch {
    return {};
  }
}

export function initials(name) {
  return (name || '?').split(/[\s._-]+/).filter(Boolean).slice(0, 2)
    .map((w) => w[0].toUpperCase()).join('') || '?';
}

/** A stable hue for a user's avatar. */
export function hue(id) {
  let h = 0;
  for (const c of String(id)) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}
