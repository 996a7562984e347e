// The words of the ledger alarm banner, by the alarm's kind (docs/node.md, "Alarm"): what the
// exchange did, what to do, and what each of the two checkpoints it names is. A kind this
// console does not know yet is shown by its name, never as another kind.

const KINDS = {
  fork: {
    heading: 'LEDGER ALARM: the exchange showed two different ledgers (fork)',
    advice:
      'Deliveries verified after this point cannot be trusted until the operators of the exchange explain it. The evidence is the two checkpoints below, each signed by the exchange.',
    first: 'First checkpoint',
    second: 'Second checkpoint',
  },
  rollback: {
    heading: 'LEDGER ALARM: the exchange rolled its ledger back',
    advice:
      'Deliveries verified after this point cannot be trusted until the operators of the exchange explain it. The evidence is the two checkpoints below, each signed by the exchange.',
    first: 'First checkpoint',
    second: 'Second checkpoint',
  },
  key: {
    heading: 'LEDGER ALARM: the exchange’s checkpoint is not signed by the ledger key this node pinned',
    advice:
      'New deliveries are quarantined until the exchange signs with its own key again: its operators must put back the ledger key made with its database. The evidence is the last checkpoint this node accepted and the one the exchange serves now.',
    first: 'Last checkpoint accepted',
    second: 'Checkpoint served, not signed by the pinned key',
  },
};

/** `{heading, advice, first, second}` for an alarm of `kind`. */
export function alarmWords(kind) {
  return (
    (Object.hasOwn(KINDS, kind) ? KINDS[kind] : null) ?? {
      heading: `LEDGER ALARM (${String(kind ?? 'unknown')})`,
      advice: 'Deliveries verified after this point cannot be trusted until the operators of the exchange explain it.',
      first: 'First checkpoint',
      second: 'Second checkpoint',
    }
  );
}
