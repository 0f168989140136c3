// A counting pass-through in front of the XAPI simulator, for the plugin's own XenAPI
// calls (the simulator has no call log). The wrapper plugin (sim.mjs) points
// FLATSNAP_XAPI_URL here; every POST is forwarded unchanged to the simulator over a
// keep-alive connection and answered with the simulator's bytes. Each call is recorded
// as { method, session, ms }: `session` (the first parameter) is the fresh
// __sm__backend session xapi makes for each plugin run, so calls group by plugin run;
// `ms` is the simulator's answer time as seen here (the plugin's wait, minus the hop).
import http from 'node:http';

export async function startProxy() {
  let upstream; // URL, set once the simulator listens
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const calls = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const text = body.toString('utf8', 0, Math.min(body.length, 4096));
      const method = /<methodName>\s*([^<\s]+)\s*<\/methodName>/.exec(text)?.[1] ?? '?';
      const session = /<param>\s*<value>\s*(?:<string>)?\s*([^<\s]+)/.exec(text)?.[1] ?? '?';
      const t0 = performance.now();
      const headers = { ...req.headers, host: upstream.host };
      delete headers.connection;
      const up = http.request(upstream, { method: 'POST', agent, headers }, (ur) => {
        const out = [];
        ur.on('data', (c) => out.push(c));
        ur.on('end', () => {
          calls.push({ method, session, ms: performance.now() - t0 });
          const h = { ...ur.headers };
          delete h.connection;
          delete h['keep-alive'];
          delete h['transfer-encoding'];
          const payload = Buffer.concat(out);
          h['content-length'] = String(payload.length);
          res.writeHead(ur.statusCode ?? 502, h);
          res.end(payload);
        });
      });
      up.on('error', (e) => {
        calls.push({ method, session, ms: performance.now() - t0, error: e.message });
        res.writeHead(502);
        res.end();
      });
      up.end(body);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/`,
    setUpstream(u) {
      upstream = new URL(u);
    },
    /** Calls recorded so far (a live array). */
    calls,
    async stop() {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(() => r()));
      agent.destroy();
    },
  };
}

/** { method: count } of a list of calls. */
export function countByMethod(calls) {
  const out = {};
  for (const c of calls) out[c.method] = (out[c.method] ?? 0) + 1;
  return Object.fromEntries(Object.entries(out).sort((a, b) => b[1] - a[1]));
}
