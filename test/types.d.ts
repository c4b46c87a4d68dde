/** xhr2 (a test-only XMLHttpRequest polyfill for dicomweb-client) ships no types. */
declare module "xhr2" {
  const XMLHttpRequest: unknown;
  export default XMLHttpRequest;
}
