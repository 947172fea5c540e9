// What a person can record themselves, as FHIR resources (LOINC codes, UCUM units), and back:
// pure functions used by the entry form (OwnEntryForm.tsx) and tested in entries.test.ts.

export const SELF_TAG_SYSTEM = 'https://fastenhealth.com/fasten-desktop/tags';
export const SELF_TAG_CODE = 'self-entered';
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';

export type KindKey =
  | 'weight'
  | 'height'
  | 'blood-pressure'
  | 'glucose'
  | 'temperature'
  | 'heart-rate'
  | 'condition'
  | 'medication'
  | 'allergy'
  | 'immunization'
  | 'note';

export interface Unit {
  code: string; // UCUM
  label: string;
}

export interface Kind {
  key: KindKey;
  label: string;
  /** The name a measurement is stored under (code.text). */
  title?: string;
  /** LOINC code for measurements. */
  loinc?: string;
  display?: string;
  units?: Unit[];
}

export const KINDS: Kind[] = [
  { key: 'weight', label: 'Weight', title: 'Body weight', loinc: '29463-7', display: 'Body weight', units: [{ code: 'kg', label: 'kg' }, { code: '[lb_av]', label: 'lb' }] },
  { key: 'height', label: 'Height', title: 'Body height', loinc: '8302-2', display: 'Body height', units: [{ code: 'cm', label: 'cm' }, { code: '[in_i]', label: 'in' }] },
  { key: 'blood-pressure', label: 'Blood pressure', title: 'Blood pressure', loinc: '85354-9', display: 'Blood pressure panel with all children optional', units: [{ code: 'mm[Hg]', label: 'mmHg' }] },
  { key: 'glucose', label: 'Blood glucose', title: 'Blood glucose', loinc: '2339-0', display: 'Glucose [Mass/volume] in Blood', units: [{ code: 'mg/dL', label: 'mg/dL' }, { code: 'mmol/L', label: 'mmol/L' }] },
  { key: 'temperature', label: 'Temperature', title: 'Body temperature', loinc: '8310-5', display: 'Body temperature', units: [{ code: 'Cel', label: '°C' }, { code: '[degF]', label: '°F' }] },
  { key: 'heart-rate', label: 'Heart rate', title: 'Heart rate', loinc: '8867-4', display: 'Heart rate', units: [{ code: '/min', label: 'beats/min' }] },
  { key: 'condition', label: 'Condition' },
  { key: 'medication', label: 'Medication I take' },
  { key: 'allergy', label: 'Allergy' },
  { key: 'immunization', label: 'Immunization' },
  { key: 'note', label: 'Note' },
];

export const kindOf = (k: KindKey): Kind => KINDS.find((x) => x.key === k)!;

/** What the form holds. Strings, as typed. */
export interface EntryValues {
  kind: KindKey;
  date: string; // YYYY-MM-DD or YYYY-MM-DDTHH:MM (local)
  value: string; // measurement value; systolic for blood pressure
  value2: string; // diastolic
  unit: string;
  text: string; // name of the condition, medication, allergy, vaccine; the note's text
  detail: string; // dose; allergy reaction
  criticality: '' | 'low' | 'high' | 'unable-to-assess';
  status: string; // medication: active | completed
}

export function emptyValues(kind: KindKey, today: string): EntryValues {
  const k = kindOf(kind);
  const undated = kind === 'condition' || kind === 'allergy' || kind === 'medication';
  return { kind, date: undated ? '' : today, value: '', value2: '', unit: k.units?.[0].code ?? '', text: '', detail: '', criticality: '', status: 'active' };
}

export function isSelfEntered(resource: unknown): boolean {
  const tags = (resource as { meta?: { tag?: { system?: string; code?: string }[] } })?.meta?.tag ?? [];
  return tags.some((t) => t.system === SELF_TAG_SYSTEM && t.code === SELF_TAG_CODE);
}

/** A local "YYYY-MM-DDTHH:MM" as an instant with the local offset; a day stays a day. */
export function fhirDateTime(local: string): string {
  if (local.length <= 10) return local;
  const d = new Date(local);
  if (Number.isNaN(d.getTime())) return local;
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const pad = (n: number) => String(Math.floor(Math.abs(n))).padStart(2, '0');
  return `${local.slice(0, 16)}:00${sign}${pad(off / 60)}:${pad(off % 60)}`;
}

function quantity(value: string, unit: string, units: Unit[]) {
  const u = units.find((x) => x.code === unit) ?? units[0];
  return { value: Number(value), unit: u.label, system: UCUM, code: u.code };
}

/** Form problems worth saying before sending (the server checks everything again). */
export function checkValues(v: EntryValues): string | null {
  const k = kindOf(v.kind);
  if (!v.date && v.kind !== 'condition' && v.kind !== 'allergy' && v.kind !== 'medication') return 'Enter the date.';
  if (k.loinc) {
    if (v.value.trim() === '' || !Number.isFinite(Number(v.value))) return v.kind === 'blood-pressure' ? 'Enter the systolic (upper) value as a number.' : 'Enter the value as a number.';
    if (v.kind === 'blood-pressure' && (v.value2.trim() === '' || !Number.isFinite(Number(v.value2)))) return 'Enter the diastolic (lower) value as a number.';
  } else if (!v.text.trim()) {
    return v.kind === 'note' ? 'Write the note.' : 'Enter a name.';
  }
  return null;
}

/** The FHIR resource for the form's values. */
export function toResource(v: EntryValues): Record<string, unknown> {
  const k = kindOf(v.kind);
  const when = v.date ? fhirDateTime(v.date) : undefined;
  if (k.loinc) {
    const code = { coding: [{ system: LOINC, code: k.loinc, display: k.display }], text: k.title ?? k.label };
    const base = { resourceType: 'Observation', status: 'final', code, effectiveDateTime: when };
    if (v.kind === 'blood-pressure') {
      const comp = (loinc: string, display: string, value: string) => ({
        code: { coding: [{ system: LOINC, code: loinc, display }], text: display },
        valueQuantity: quantity(value, 'mm[Hg]', k.units!),
      });
      return {
        ...base,
        component: [comp('8480-6', 'Systolic blood pressure', v.value), comp('8462-4', 'Diastolic blood pressure', v.value2)],
      };
    }
    return { ...base, valueQuantity: quantity(v.value, v.unit, k.units!) };
  }
  const text = v.text.trim();
  switch (v.kind) {
    case 'condition':
      return { resourceType: 'Condition', code: { text }, ...(when ? { onsetDateTime: when } : {}) };
    case 'medication':
      return {
        resourceType: 'MedicationStatement',
        status: v.status || 'active',
        medicationCodeableConcept: { text },
        ...(when ? { effectiveDateTime: when } : {}),
        ...(v.detail.trim() ? { dosage: [{ text: v.detail.trim() }] } : {}),
      };
    case 'allergy':
      return {
        resourceType: 'AllergyIntolerance',
        code: { text },
        ...(v.criticality ? { criticality: v.criticality } : {}),
        ...(when ? { onsetDateTime: when } : {}),
        ...(v.detail.trim() ? { reaction: [{ manifestation: [{ text: v.detail.trim() }] }] } : {}),
      };
    case 'immunization':
      return { resourceType: 'Immunization', status: 'completed', vaccineCode: { text }, occurrenceDateTime: when };
    case 'note':
    default:
      return {
        resourceType: 'DocumentReference',
        status: 'current',
        description: text.split('\n')[0].slice(0, 120),
        date: when && when.length > 10 ? when : `${when ?? new Date().toISOString().slice(0, 10)}T12:00:00Z`,
        content: [{ attachment: { contentType: 'text/plain', data: toBase64(text), title: 'Note' } }],
      };
  }
}

function toBase64(s: string): string {
  const bytes = new TextEncoder().encode(s);
  let bin = '';
  bytes.forEach((b) => (bin += String.fromCharCode(b)));
  return btoa(bin);
}

function fromBase64(s: string): string {
  try {
    const bin = atob(s);
    return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    return '';
  }
}

/* eslint-disable @typescript-eslint/no-explicit-any */
/** The form's values for a stored entry (to edit it); null when it is not one the form makes. */
export function fromResource(r: any): EntryValues | null {
  if (!r || typeof r !== 'object') return null;
  const day = (s: unknown) => (typeof s === 'string' ? (s.length > 10 ? localInput(s) : s) : '');
  const base = (kind: KindKey) => emptyValues(kind, '');
  switch (r.resourceType) {
    case 'Observation': {
      const code = (r.code?.coding ?? []).find((c: any) => c.system === LOINC)?.code;
      const k = KINDS.find((x) => x.loinc && x.loinc === code);
      if (!k) return null;
      const v = { ...base(k.key), date: day(r.effectiveDateTime) };
      if (k.key === 'blood-pressure') {
        for (const c of r.component ?? []) {
          const cc = (c.code?.coding ?? [])[0]?.code;
          if (cc === '8480-6') v.value = String(c.valueQuantity?.value ?? '');
          if (cc === '8462-4') v.value2 = String(c.valueQuantity?.value ?? '');
        }
      } else {
        v.value = String(r.valueQuantity?.value ?? '');
        v.unit = r.valueQuantity?.code ?? v.unit;
      }
      return v;
    }
    case 'Condition':
      return { ...base('condition'), text: r.code?.text ?? '', date: day(r.onsetDateTime) };
    case 'MedicationStatement':
      return { ...base('medication'), text: r.medicationCodeableConcept?.text ?? '', date: day(r.effectiveDateTime), detail: r.dosage?.[0]?.text ?? '', status: r.status ?? 'active' };
    case 'AllergyIntolerance':
      return {
        ...base('allergy'),
        text: r.code?.text ?? '',
        date: day(r.onsetDateTime),
        criticality: r.criticality ?? '',
        detail: r.reaction?.[0]?.manifestation?.[0]?.text ?? '',
      };
    case 'Immunization':
      return { ...base('immunization'), text: r.vaccineCode?.text ?? '', date: day(r.occurrenceDateTime) };
    case 'DocumentReference':
      return { ...base('note'), text: fromBase64(r.content?.[0]?.attachment?.data ?? ''), date: day(r.date) };
  }
  return null;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** An instant as the value of a datetime-local input (local time). */
export function localInput(instant: string): string {
  const d = new Date(instant);
  if (Number.isNaN(d.getTime())) return instant.slice(0, 10);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function nowLocal(): string {
  return localInput(new Date().toISOString());
}
