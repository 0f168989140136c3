// Type shims for the parts of winston imported directly (see src/log.ts for why).
declare module 'winston/lib/winston/create-logger.js' {
  import type { Logger, LoggerOptions } from 'winston';
  const createLogger: (opts?: LoggerOptions) => Logger;
  export default createLogger;
}
declare module 'winston/lib/winston/transports/stream.js' {
  import type { transports } from 'winston';
  const StreamTransport: typeof transports.Stream;
  export default StreamTransport;
}
declare module 'logform/printf.js' {
  import type { Format, TransformableInfo } from 'logform';
  const printf: (fn: (info: TransformableInfo) => string) => Format;
  export default printf;
}
