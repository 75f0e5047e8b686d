// Drives a running chaoskit proxy through AdminClient and checks each step; run by
// tests/examples/test_node_client.py. Usage: node demo.mjs ADMIN_URL PROXY_URL HOST PORT
import http from "node:http";
import assert from "node:assert/strict";
import { AdminClient, AdminError } from "./admin-client.mjs";

const [adminUrl, proxyUrl, host, port] = process.argv.slice(2);
const admin = new AdminClient(adminUrl);

/** GET http://HOST:PORT/ through the proxy (absolute-form request, as HTTP_PROXY clients send). */
function viaProxy() {
  const proxy = new URL(proxyUrl);
  return new Promise((resolve, reject) => {
    http
      .get({ host: proxy.hostname, port: proxy.port, path: `http://${host}:${port}/`, headers: { host: `${host}:${port}` } }, (r) => {
        r.resume();
        r.on("end", () => resolve(r.statusCode));
      })
      .on("error", reject);
  });
}

const fault = {
  apiVersion: "chaoskit.dev/v1alpha1",
  kind: "UpstreamFault",
  metadata: { name: "node-abort" },
  spec: { host, abort: { httpStatus: 503 } },
};

assert.equal(await viaProxy(), 200);
assert.deepEqual(await admin.apply(fault), ["upstreamfault/node-abort created"]);
assert.equal(await viaProxy(), 503);
assert.deepEqual(await admin.applied(), [{ kind: "UpstreamFault", namespace: "default", name: "node-abort" }]);

const bad = structuredClone(fault);
bad.spec.abort.httpStatus = 999;
await assert.rejects(admin.apply(bad), (e) => {
  assert.ok(e instanceof AdminError && e.status === 400);
  assert.equal(e.errors[0].path, "spec.abort.httpStatus");
  return true;
});
assert.equal(await viaProxy(), 503); // the refused change left the fault in place

assert.deepEqual(await admin.delete(fault), ["upstreamfault/node-abort deleted"]);
assert.equal(await viaProxy(), 200);
await admin.apply(fault);
assert.deepEqual(await admin.reset(), ["runtime layer cleared"]);
assert.deepEqual(await admin.applied(), []);

// Named faults, Toxiproxy-style: an Istio route fault (abort) on the host, then removed.
const teapot = await admin.putFault("node-teapot", { host, abort: { httpStatus: 418 } });
assert.deepEqual(teapot.resources, [
  { kind: "VirtualService", namespace: "default", name: "fault-node-teapot", action: "created" },
]);
assert.equal(await viaProxy(), 418);
assert.deepEqual((await admin.faults()).map((f) => f.name), ["node-teapot"]);
await assert.rejects(admin.putFault("node-typo", { host: `${host}x`, abort: { httpStatus: 503 } }), (e) => {
  assert.ok(e instanceof AdminError && e.status === 400);
  assert.match(e.errors[0].message, /did you mean/);
  return true;
});
assert.equal(await admin.removeFault("node-teapot"), true);
assert.equal(await admin.removeFault("node-teapot"), false);
assert.equal(await viaProxy(), 200);
await admin.putFault("node-slow", { type: "upstream", host, abort: { httpStatus: 503 } });
assert.equal(await viaProxy(), 503);
await admin.resetFaults();
assert.deepEqual(await admin.faults(), []);
assert.equal(await viaProxy(), 200);
console.log("node client: all steps passed");
