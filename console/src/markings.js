// Markings as the recipient sees them (Art. 4.2): its own equivalent level first, then the
// originator and the originator's level — `군사II급비밀 (JPN 極秘)` — with EXERCISE before it
// for anything made under an exercise. Each level is tagged with its party's language, so a
// Korean level is set in the Korean CJK face and a Japanese one in the Japanese face.

export const PARTY_LANG = { JPN: 'ja', KOR: 'ko', CHN: 'zh', TWN: 'zh-Hant', FRA: 'fr', DEU: 'de', ITA: 'it', UKR: 'uk', IND: 'en' };

/**
 * The banner of an inbox item as parts [{text, lang}] whose texts join to `item.banner`; when
 * the parts would not reproduce the node's banner exactly, the banner itself is the one part
 * (the node's words are authoritative).
 */
export function bannerParts(item, ownParty) {
  const om = item.originator_marking ?? {};
  const parts = [];
  if (item.exercise) parts.push({ text: 'EXERCISE ', lang: null, cls: 'exercise' });
  parts.push({ text: item.level ?? '', lang: PARTY_LANG[ownParty] ?? null });
  parts.push({ text: ` (${om.party ?? item.originator} `, lang: null });
  parts.push({ text: om.level ?? '', lang: PARTY_LANG[om.party ?? item.originator] ?? null });
  parts.push({ text: ')', lang: null });
  const joined = parts.map((p) => p.text).join('');
  if (item.banner && joined !== item.banner) return [{ text: item.banner, lang: null }];
  return parts;
}

/** The originator's caveats in words: "REL TO JPN, KOR · ORCON · NOFORN" ('' when none). */
export function caveatText(caveats) {
  if (!caveats) return '';
  if (Array.isArray(caveats)) return caveats.join(' · ');
  const out = [];
  if (caveats.rel_to && caveats.rel_to.length) out.push(`REL TO ${caveats.rel_to.join(', ')}`);
  if (caveats.orcon) out.push('ORCON');
  if (caveats.noforn) out.push('NOFORN');
  return out.join(' · ');
}

export const STATE_LABEL = {
  verified: 'Verified',
  quarantined: 'Quarantined',
  pending: 'Pending verification',
};

export const ROLE_RANK = { officer: 0, approver: 1, admin: 2 };
/** True when `role` has everything of `needed` (officer < approver < admin). */
export const can = (role, needed) => (ROLE_RANK[role] ?? -1) >= ROLE_RANK[needed];
