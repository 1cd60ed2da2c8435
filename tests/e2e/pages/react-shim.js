// react-shim.js: the ES module face of React's UMD build (window.React), so that @broker/react's
// `import { useSyncExternalStore, ... } from 'react'` resolves in a page without a bundler.
const React = window.React;
export default React;
export const { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore, createElement, StrictMode } = React;
