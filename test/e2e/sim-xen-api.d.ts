// The xen-api package ships no types; the simulator test uses this much of it.
declare module 'xen-api' {
  export interface XapiOptions {
    url: string;
    auth?: { user: string; password?: string };
    allowUnauthorized?: boolean;
    transport?: 'auto' | 'json-rpc' | 'xml-rpc';
    eventPollDelay?: number;
    debounce?: number;
    watchEvents?: boolean | string[];
  }
  export interface Xapi {
    readonly pool: { $ref: string } & Record<string, any>;
    readonly objectsFetched: Promise<void>;
    connect(): Promise<void>;
    disconnect(): Promise<void>;
    call(method: string, ...args: unknown[]): Promise<any>;
    callAsync(method: string, ...args: unknown[]): Promise<any>;
    getRecord(type: string, ref: string): Promise<any>;
    getObjectByRef(ref: string, defaultValue?: unknown): any;
    barrier(ref?: string): Promise<unknown>;
    watchTask(ref: string): Promise<unknown>;
  }
  export function createClient(opts: XapiOptions): Xapi;
}
