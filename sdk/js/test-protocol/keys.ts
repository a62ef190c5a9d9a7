/**
 * What an end-to-end-encrypting client uploads to the key directory (docs/http-api.md, "Key directory"),
 * made with node's own Ed25519: a self-signed device identity and signed one-time keys. Only needed to
 * make the server send `device_list.changed` and `keys.low`.
 */
import { createHmac, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

/** Canonical JSON (Matrix): object keys sorted at every level, no whitespace. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    return `{${Object.keys(record)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

const unpadded = (bytes: Buffer): string => bytes.toString('base64').replace(/=+$/, '');

export class Device {
  private readonly privateKey: KeyObject;
  readonly ed25519: string;

  constructor(
    readonly userId: string,
    readonly deviceId: string,
  ) {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    this.privateKey = privateKey;
    const jwk = publicKey.export({ format: 'jwk' });
    this.ed25519 = unpadded(Buffer.from(jwk.x as string, 'base64url'));
  }

  /** `object` with `signatures.<user>.ed25519:<device>` over its canonical JSON (without `signatures`/`unsigned`). */
  signed(object: Record<string, unknown>): Record<string, unknown> {
    const { signatures: _signatures, unsigned: _unsigned, ...payload } = object;
    const signature = unpadded(sign(null, Buffer.from(canonicalJson(payload)), this.privateKey));
    return { ...object, signatures: { [this.userId]: { [`ed25519:${this.deviceId}`]: signature } } };
  }

  identity(): Record<string, unknown> {
    return this.signed({
      user_id: this.userId,
      device_id: this.deviceId,
      algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
      keys: { [`ed25519:${this.deviceId}`]: this.ed25519, [`curve25519:${this.deviceId}`]: unpadded(randomBytes(32)) },
    });
  }

  oneTimeKeys(count: number): Record<string, unknown> {
    const keys: Record<string, unknown> = {};
    for (let i = 0; i < count; i += 1) keys[`signed_curve25519:k${i}`] = this.signed({ key: unpadded(randomBytes(32)) });
    return keys;
  }
}

/**
 * `token` with its expiry moved to `expiresAt` (Unix s) and signed again with `secret` (HS256): a real
 * session's token that lapses soon, as the server would issue it with a short lifetime.
 */
export function withExpiry(token: string, secret: string, expiresAt: number): string {
  const [header, payload] = token.split('.');
  if (header === undefined || payload === undefined) throw new Error('not a JWT');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  claims.exp = expiresAt;
  const body = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}
