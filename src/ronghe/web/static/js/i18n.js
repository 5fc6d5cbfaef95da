// Chinese and English.  The choice is kept in localStorage; the default follows
// navigator.language.  t('key', {n}) fills {n} placeholders.
import { en, zh } from './strings.js';

const KEY = 'ronghe.lang';
const DICTS = { en, zh };
const listeners = new Set();
let current = localStorage.getItem(KEY)
  || ((navigator.language || 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en');

export function lang() { return current; }

export function setLang(value) {
  current = DICTS[value] ? value : 'en';
  localStorage.setItem(KEY, current);
  for (const fn of listeners) fn(current);
}

export function onLangChange(fn) { listeners.add(fn); }

export function t(key, vars) {
  const text = DICTS[current][key] ?? en[key] ?? key;
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}
