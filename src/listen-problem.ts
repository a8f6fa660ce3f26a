/**
 * Why a listener cannot have its address, in one line that names the setting to change: shared by
 * SIP (sip.listen.*) and the admin API (api.*), which otherwise fail start-up with Node's bare
 * `listen EADDRINUSE`.
 */
export interface ListenTarget {
  /** What listens, e.g. "SIP" or "admin API". */
  what: string;
  host: string;
  port: number;
  /** e.g. "udp", "tcp", "tls", "http". */
  transport: string;
  portSetting: string;
  hostSetting: string;
}

export function listenProblem(t: ListenTarget, err: NodeJS.ErrnoException): string {
  const where = `${t.what} cannot listen on ${t.host}:${t.port}/${t.transport}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return `${where}: the port is in use by another program (EADDRINUSE); stop it or change ${t.portSetting} (voiceguard doctor checks the ports)`;
    case 'EACCES':
      return `${where}: permission denied (EACCES); ports below 1024 need root or CAP_NET_BIND_SERVICE, or change ${t.portSetting}`;
    case 'EADDRNOTAVAIL':
      return `${where}: ${t.host} is not an address of this machine (EADDRNOTAVAIL); change ${t.hostSetting}`;
    default:
      return `${where}: ${err.message}`;
  }
}
