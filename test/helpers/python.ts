// An independent XML-RPC parser for the tests: Python's xmlrpc.client, the one the
// stock SM stack uses. Every response the driver writes is re-parsed by it.
import { execa } from 'execa';

const PY = `
import sys, json, xmlrpc.client
doc = sys.stdin.read()
try:
    params, method = xmlrpc.client.loads(doc, use_datetime=False)
    def conv(v):
        if isinstance(v, xmlrpc.client.DateTime): return {"$datetime": v.value}
        if isinstance(v, bytes): return {"$bytes": v.hex()}
        if isinstance(v, xmlrpc.client.Binary): return {"$bytes": v.data.hex()}
        if isinstance(v, dict): return {k: conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)): return [conv(x) for x in v]
        return v
    print(json.dumps({"params": conv(list(params)), "method": method}))
except xmlrpc.client.Fault as f:
    print(json.dumps({"fault": {"code": f.faultCode, "string": f.faultString}}))
`;

export type PyParsed =
  | { params: unknown[]; method: string | null; fault?: undefined }
  | { fault: { code: number; string: string }; params?: undefined };

export async function pyLoads(xml: string): Promise<PyParsed> {
  const r = await execa('/usr/bin/python3', ['-c', PY], { input: xml });
  return JSON.parse(r.stdout) as PyParsed;
}

/** Python's dumps, for requests in the Python style (header, <string>, newlines). */
export async function pyDumps(params: unknown[], method: string): Promise<string> {
  const code = `import sys, json, xmlrpc.client\np = json.loads(sys.stdin.read())\nsys.stdout.write(xmlrpc.client.dumps(tuple(p), ${JSON.stringify(method)}))`;
  const r = await execa('/usr/bin/python3', ['-c', code], { input: JSON.stringify(params) });
  return r.stdout;
}
