// Talking to Ronghe's public API.  The token lives in sessionStorage (never in a URL) and
// goes as `Authorization: Bearer`.

const KEY = 'ronghe.token';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(KEY) || ''; },
  set token(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
  user: null,
};

const listeners = new Set();
export function onSignedOut(fn) { listeners.add(fn); }

function headers(extra) {
  const out = { ...extra };
  if (session.token) out.Authorization = `Bearer ${session.token}`;
  return out;
}

function messageOf(body, status) {
  if (body && typeof body === 'object') {
    if (typeof body.msg === 'string' && body.msg) return body.msg;
    if (body.error && body.error.message) return body.error.message;
    if (typeof body.detail === 'string') return body.detail;
  }
  return `HTTP ${status}`;
}

async function handle(response) {
  let body = null;
  const text = await response.text();
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok || (body && typeof body.code === 'number' && body.code !== 0
      && body.code !== 200)) {
    const status = response.ok ? body.code : response.status;
    if (status === 401 && session.token) {
      session.token = '';
      for (const fn of listeners) fn();
    }
    throw new ApiError(status, messageOf(body, status));
  }
  return body;
}

export async function post(path, body = {}) {
  let response;
  try {
    response = await fetch(path, {
      method: 'POST', headers: headers({ 'Content-Type': 'application/json' }),
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(0, String(err.message || err));
  }
  return handle(response);
}

export async function get(path) {
  let response;
  try {
    response = await fetch(path, { headers: headers() });
  } catch (err) {
    throw new ApiError(0, String(err.message || err));
  }
  return handle(response);
}

// Multipart upload with progress (fetch cannot report upload progress; XHR can).
export function upload(path, files, onProgress, field = 'init_img') {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const file of files) form.append(field, file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    if (session.token) xhr.setRequestHeader('Authorization', `Bearer ${session.token}`);
    xhr.upload.addEventListener('progress', (ev) => {
      if (ev.lengthComputable && onProgress) onProgress(ev.loaded / ev.total);
    });
    xhr.addEventListener('load', () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { body = null; }
      if (xhr.status === 200 && body && body.code === 0) resolve(body.info);
      else reject(new ApiError(xhr.status, messageOf(body, xhr.status)));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'network error')));
    xhr.send(form);
  });
}

// Server-sent events from a POST (EventSource cannot POST or send headers): calls
// onData(json) per `data:` line until [DONE]; resolves when the stream ends.
export async function stream(path, body, onData, signal) {
  const response = await fetch(path, {
    method: 'POST', signal,
    headers: headers({ 'Content-Type': 'application/json', Accept: 'text/event-stream' }),
    body: JSON.stringify(body),
  });
  if (!response.ok) await handle(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut = buffer.indexOf('\n');
    while (cut >= 0) {
      const line = buffer.slice(0, cut).trim();
      buffer = buffer.slice(cut + 1);
      cut = buffer.indexOf('\n');
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') return;
      onData(JSON.parse(data));
    }
  }
}
