// Replaced at bundle time by build.mjs with package.json's version.
export const VERSION: string = typeof __FLATSNAP_VERSION__ === 'string' ? __FLATSNAP_VERSION__ : '0.0.0-dev';
declare const __FLATSNAP_VERSION__: string | undefined;
