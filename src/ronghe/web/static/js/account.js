// Who is signed in, and a small shared store for passing settings between pages.
import { post, session } from './api.js';

export async function loadMe() {
  const body = await post('/api/v1b/me', {});
  session.user = body.info;
  return session.user;
}

// "Use these settings again" / "Generate with this model": the generate page picks this up.
let preset = null;
export function setPreset(value) { preset = value; }
export function takePreset() {
  const value = preset;
  preset = null;
  return value;
}
