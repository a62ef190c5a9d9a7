/** Builders shared by the tests: messages and replies with the server's field names. */
import type { HistoryMessage, HistoryReply, Message, SubscribeReply } from '../src/protocol.js';

export const CONVERSATION = 'conv-1';
export const SELF = 'user-self';
export const OTHER = 'user-other';

export function msg(seq: number, overrides: Partial<Message> = {}): Message {
  return {
    id: `m${seq}`,
    app_id: 'app-1',
    conversation_id: CONVERSATION,
    seq,
    sender_id: OTHER,
    client_msg_id: `c${seq}`,
    text: `text ${seq}`,
    created_at: 1_700_000_000_000 + seq,
    correlation_id: 'corr',
    version: 0,
    ...overrides,
  };
}

export function historyMsg(seq: number, overrides: Partial<HistoryMessage> = {}): HistoryMessage {
  return { ...msg(seq), reply_count: 0, reactions: [], ...overrides };
}

export function page(seqs: number[], hasMore = false): HistoryReply {
  return { conversation_id: CONVERSATION, messages: seqs.map((seq) => historyMsg(seq)), has_more: hasMore };
}

export function replay(seqs: number[], options: Partial<SubscribeReply> = {}): SubscribeReply {
  const messages = seqs.map((seq) => msg(seq));
  return {
    conversation_id: CONVERSATION,
    epoch: 'e1',
    last_seq: seqs.at(-1) ?? 0,
    recovered: true,
    messages,
    has_more: false,
    ...options,
  };
}

export function range(from: number, through: number): number[] {
  const seqs: number[] = [];
  for (let seq = from; seq <= through; seq += 1) seqs.push(seq);
  return seqs;
}
