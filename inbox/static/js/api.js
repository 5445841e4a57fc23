// The agent API: JSON over fetch, the CSRF header on writes, and graceful answers for routes
// that the server does not have yet (404/405 → `ApiMissing`).

let csrf = null;

export function setCsrf(token) {
  csrf = token;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export class ApiMissing extends ApiError {}

export async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  let response;
  try {
    response = await fetch("/api/v1" + path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, String(error.message || error));
  }
  let data = null;
  const text = await response.text();
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: text };
  }
  if (!response.ok) {
    const message = (data && data.error) || response.statusText;
    // A route that is not there at all: aiohttp answers 404/405 with its own reason.
    const missing =
      response.status === 405 || (response.status === 404 && /^not found$/i.test(message || ""));
    if (missing) throw new ApiMissing(response.status, message);
    if (response.status === 401) window.dispatchEvent(new CustomEvent("pishkhan:unauthorized"));
    throw new ApiError(response.status, message);
  }
  return data;
}

/**
 * Upload files as multipart/form-data (`file` parts) with the CSRF header. XHR rather than
 * fetch: only XHR reports upload progress; `onProgress(fraction)` gets it. Resolves with the
 * JSON answer; rejects with `ApiError` (413 too large, 415 type refused, …).
 */
export function upload(path, files, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const file of files) form.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1" + path);
    xhr.setRequestHeader("Accept", "application/json");
    if (csrf) xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network error")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted")));
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        data = { error: xhr.responseText };
      }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(data);
      if (xhr.status === 401) window.dispatchEvent(new CustomEvent("pishkhan:unauthorized"));
      reject(new ApiError(xhr.status, (data && data.error) || xhr.statusText));
    });
    xhr.send(form);
  });
}

export const get = (path) => call("GET", path);
export const post = (path, body = {}) => call("POST", path, body);
export const put = (path, body) => call("PUT", path, body);
export const patch = (path, body) => call("PATCH", path, body);
export const del = (path) => call("DELETE", path);

/** Try the contract's method first, then an older one the server may still have. */
export async function write(methods, path, body) {
  let last;
  for (const method of methods) {
    try {
      return await call(method, path, body);
    } catch (error) {
      if (!(error instanceof ApiMissing)) throw error;
      last = error;
    }
  }
  throw last;
}

/** GET that answers `fallback` when the route does not exist yet. */
export async function optional(path, fallback) {
  try {
    return await get(path);
  } catch (error) {
    if (error instanceof ApiMissing) return fallback;
    throw error;
  }
}
