// Why: one lazy, shared loader for @peculiar/x509 (certificate/CRL parsing and generation), so that
// the polyfill it needs is installed first and servers without TLS never pay for loading it.

import { installReflectMetadataShim } from './reflect-shim';

export type X509Lib = typeof import('@peculiar/x509');

let loading: Promise<X509Lib> | undefined;

export function loadX509(): Promise<X509Lib> {
  if (!loading) {
    installReflectMetadataShim();
    loading = import('@peculiar/x509');
  }
  return loading;
}
