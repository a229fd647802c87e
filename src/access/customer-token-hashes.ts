/** What a store keeps of a customer token (see CustomerTokenHashes). */
export interface StoredTokenHash {
  /** The token's SHA-256, base64url (hashToken). */
  hash: string;
  /** Minted without an API key: its requests also count against its address (anonymousTokensOf). */
  anonymous: boolean;
}

/**
 * Where access control reads a customer token's hash: the conversation store, which keeps it
 * with its conversation (its module provides this port as the ConversationRepository).
 */
export abstract class CustomerTokenHashes {
  /** Null when the conversation does not exist (or has no token). */
  abstract customerToken(conversationId: string): Promise<StoredTokenHash | null>;
}
