// A small client of chaoskit's admin API (docs/proxy.md, "Changing the configuration at
// runtime") using only Node's built-in fetch: apply, delete, list and reset resources of a
// running chaoskit proxy. Usage: import { AdminClient } from "./admin-client.mjs".

export class AdminError extends Error {
  constructor(status, errors) {
    super(`chaoskit admin answered ${status}: ${errors.map((e) => e.message ?? e).join("; ")}`);
    this.status = status;
    this.errors = errors;
  }
}

export class AdminClient {
  /** @param {string} adminUrl e.g. "http://127.0.0.1:15000" */
  constructor(adminUrl) {
    this.adminUrl = adminUrl.replace(/\/$/, "");
  }

  async #post(path, body) {
    const r = await fetch(`${this.adminUrl}${path}?format=json`, { method: "POST", body });
    const data = await r.json().catch(async () => ({ errors: [await r.text()] }));
    if (!r.ok) throw new AdminError(r.status, data.errors ?? []);
    return data.results;
  }

  /** Apply YAML or JSON text (or an object, sent as JSON); resolves to kubectl-like lines. */
  apply(resources) {
    return this.#post("/config/apply", typeof resources === "string" ? resources : JSON.stringify(resources));
  }

  delete(resources) {
    return this.#post("/config/delete", typeof resources === "string" ? resources : JSON.stringify(resources));
  }

  reset() {
    return this.#post("/config/reset", "");
  }

  async applied() {
    const r = await fetch(`${this.adminUrl}/config/applied`);
    return (await r.json()).applied;
  }
}
