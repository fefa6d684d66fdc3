import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * pino JSON logs. Authorization headers and anything named like a secret are redacted
 * as a second line of defence; the first is that no code path logs a key or token.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({
    level,
    base: { service: 'switchyard' },
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', '*.keys', 'keys', 'key', 'token', '*.token', '*.primary', '*.secondary'],
      censor: '[redacted]',
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  }, destination ?? pino.destination({ sync: false, minLength: 4096 }));
}
