import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { Config } from '../config/schema.js';
import type { SipTlsOptions } from './sip-stack.js';

/** A certificate, key or CA file that cannot be read or used; the message names the setting. */
export class SipTlsFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SipTlsFileError';
  }
}

function readPem(key: string, path: string): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    throw new SipTlsFileError(`sip.tls.${key}: cannot read ${path}: ${(err as Error).message}`);
  }
  if (!data.includes('-----BEGIN ')) throw new SipTlsFileError(`sip.tls.${key}: ${path} holds no PEM block`);
  return data;
}

/**
 * Reads sip.tls's files for the SIP stack (null when tls is not in sip.listen.transports) and
 * checks that they make a usable context: a key that does not match the certificate, or a file
 * that is not what its setting says, fails here with the setting's name, not at the first call.
 */
export function loadSipTls(sip: Config['sip']): SipTlsOptions | null {
  if (!sip.listen.transports.includes('tls')) return null;
  const t = sip.tls;
  if (!t.certFile || !t.keyFile)
    throw new SipTlsFileError('sip.tls.certFile and sip.tls.keyFile must be set');
  const cert = readPem('certFile', t.certFile);
  const key = readPem('keyFile', t.keyFile);
  const ca = t.caFile ? readPem('caFile', t.caFile) : undefined;
  try {
    createSecureContext({ cert, key, ...(ca ? { ca } : {}) });
  } catch (err) {
    throw new SipTlsFileError(
      `sip.tls: ${t.certFile} and ${t.keyFile} do not make a TLS context: ${(err as Error).message}`,
    );
  }
  return {
    port: sip.listen.tlsPort,
    cert,
    key,
    ...(ca ? { ca } : {}),
    verifyPeers: t.verifyPeers,
    requireClientCert: t.requireClientCert,
    minVersion: t.minVersion,
  };
}

/** The first certificate's expiry as an ISO time (null when it cannot be read). */
export function certNotAfter(pem: Buffer): string | null {
  try {
    return new Date(new X509Certificate(pem).validTo).toISOString();
  } catch {
    return null;
  }
}
