/**
 * What the engine tells the outside world when work ends. The engine knows
 * nothing of Teams: the bot implements this interface and the composition root
 * hands it to the workers.
 */

export interface RestoreFinished {
  requestId: string;
  outcome: 'completed' | 'failed';
  /** Signed, expiring download link for a completed file restore. */
  downloadUrl?: string;
  downloadExpiresAt?: Date;
  fileName?: string;
  sizeBytes?: number;
  /** Why it failed, in words for the requester. */
  message?: string;
}

export interface EngineNotices {
  restoreFinished(event: RestoreFinished): Promise<void>;
}

/** Notices that go nowhere, for workers run without a bot. */
export const noNotices: EngineNotices = {
  restoreFinished: async () => {},
};
