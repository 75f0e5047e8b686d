// A small client of chaoskit's admin API (docs/proxy.md, "Changing the configuration at
// runtime" and "Faults by name") using only Node's built-in fetch: apply, delete, list and
// reset resources, and add, list and remove named faults, of a running chaoskit proxy.
// Usage: import { AdminClient } from "./admin-client.mjs".

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

  // -- named faults (/faults): every answer is JSON, errors are {error, status, errors?} --

  async #faults(method, path, body) {
    const r = await fetch(`${this.adminUrl}/faults${path}`, { method, body });
    const data = r.status === 204 ? null : await r.json();
    if (!r.ok) throw new AdminError(r.status, data.errors ?? [data.error]);
    return data;
  }

  /** Add a fault or replace the one of that name (idempotent); resolves to the fault as listed,
   * with the resources it is active in. */
  putFault(name, fault) {
    return this.#faults("PUT", `/${encodeURIComponent(name)}`, JSON.stringify(fault));
  }

  async faults() {
    return (await this.#faults("GET", "")).faults;
  }

  /** Resolves to false when there was no fault of that name (the state is the same). */
  async removeFault(name) {
    try {
      await this.#faults("DELETE", `/${encodeURIComponent(name)}`);
      return true;
    } catch (e) {
      if (e instanceof AdminError && e.status === 404) return false;
      throw e;
    }
  }

  async resetFaults() {
    await this.#faults("POST", "/reset");
  }
}
