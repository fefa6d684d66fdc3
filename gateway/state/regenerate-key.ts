import type { KeySlot } from '../../config/key-digest.ts';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { ConfigStore } from '../snapshot/store.ts';
import { KeySupersededError, type KeyStore } from './key-store.ts';

/**
 * Store a regenerated key's digest, then make it effective (recompile). Whole or not at all:
 * a key that could not be stored is not made effective, or a restart would bring the old
 * one back.
 */
export async function regenerateKey(keys: KeyStore, store: ConfigStore, log: Logger, endpoint: string, slot: KeySlot, digest: Buffer, by: string): Promise<void> {
  const configured = store.current.config.endpoints[endpoint]?.keys?.[slot];
  try {
    await keys.set(endpoint, slot, digest, configured, by);
  } catch (err) {
    if (err instanceof KeySupersededError) {
      throw new GatewayError('Conflict', 'The config file changed this key while the new one was being stored; the file\'s key is in force. Retry to regenerate it.');
    }
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    log.error({ file: keys.file, code }, 'cannot store a regenerated key');
    throw new GatewayError('InternalError', `The new key could not be stored (state file ${keys.file}: ${code}); the old key stays in force. Set state.file to a writable path.`);
  }
  store.refresh();
}
