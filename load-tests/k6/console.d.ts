// k6 provides `console` (https://grafana.com/docs/k6/latest/javascript-api/#console) but
// @types/k6 does not declare it, and the scripts are checked without the DOM or Node types.
declare const console: {
  log(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
};
