// Naming rules for people who read their record: references by the target's name, what an
// unresolvable reference points at in words, medication names, flags of results. The backend
// has the same rules for titles (internal/fhir/names.go); this side names what the page shows.
import type { CodeableConcept, FhirResource, MedicationRequest, MedicationStatement, Observation, Reference } from 'fhir/r4';
import type { RefTarget, ResourceDetail, Unresolvable } from '../api/types';
import { conceptText, formatNumber, quantityUnit, referenceTarget } from './format';

const TYPE_WORDS: Record<string, string> = {
  Patient: 'patient',
  Practitioner: 'doctor',
  PractitionerRole: 'doctor',
  Organization: 'clinic or organisation',
  Location: 'place',
  Encounter: 'visit',
  Condition: 'condition',
  Observation: 'test result',
  DiagnosticReport: 'report',
  Procedure: 'procedure',
  MedicationRequest: 'prescription',
  MedicationStatement: 'medication',
  Medication: 'medication',
  Immunization: 'immunization',
  AllergyIntolerance: 'allergy',
  CarePlan: 'care plan',
  CareTeam: 'care team',
  Goal: 'goal',
  Claim: 'claim',
  ExplanationOfBenefit: 'explanation of benefit',
  Coverage: 'insurance cover',
  DocumentReference: 'document',
  ImagingStudy: 'imaging study',
  Device: 'device',
  Binary: 'file',
  ServiceRequest: 'order',
  RelatedPerson: 'related person',
};

/** A type in lower-case words: "Practitioner" → "doctor". */
export function typeWord(type: string): string {
  return TYPE_WORDS[type] ?? type.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
}

/** What an unresolvable reference points at: "a doctor not in your records". */
export function unresolvedText(type: string | undefined): string {
  if (!type) return 'a record not in your records';
  const w = typeWord(type);
  return `${/^[aeiou]/.test(w) ? 'an' : 'a'} ${w} not in your records`;
}

/** Types that describe someone or somewhere rather than something that happened. */
export const DIRECTORY_TYPES = new Set(['Patient', 'Practitioner', 'PractitionerRole', 'Organization', 'Location', 'RelatedPerson', 'Person', 'HealthcareService', 'Endpoint', 'Group', 'InsurancePlan']);

/** Types that are not timeline events on their own (directory entries, a visit's costs...). */
export const NOT_EVENTS = new Set([...DIRECTORY_TYPES, 'Claim', 'ExplanationOfBenefit', 'Coverage', 'Provenance', 'Medication', 'Binary']);

const VENDOR_PREFIX = /^(?:NDA|ANDA|BLA|NDC)[0-9][0-9-]*\s+/;

/** Drops a vendor prefix such as "NDA020800 " from a name. */
export function friendlyName(s: string | undefined): string {
  const t = (s ?? '').trim();
  return t.replace(VENDOR_PREFIX, '') || t;
}

/** A concept's friendly name: its text, then a coding's display (then a code). */
export function conceptName(cc: CodeableConcept | undefined): string {
  return friendlyName(conceptText(cc));
}

/** The "Type/id" key of a reference as the API's `references` has it, or "". */
export function refKey(ref: Reference | string | undefined): string {
  const r = typeof ref === 'string' ? { reference: ref } : ref;
  const t = referenceTarget(r);
  return t ? `${t.type}/${t.id}` : '';
}

export interface RefLabel {
  text: string;
  /** The resolved target (link to it), when the store holds it. */
  target?: RefTarget;
  /** True when the reference points at nothing in the store. */
  unresolved: boolean;
}

type Refs = Pick<ResourceDetail, 'references' | 'unresolved'>;

/**
 * How a reference reads: the target's title when the store resolves it, else the reference's own
 * display, else what it points at in words. Never a bare type name.
 */
export function refLabel(ref: Reference | undefined, detail: Refs | undefined): RefLabel {
  const key = refKey(ref);
  const target = key ? detail?.references?.[key] : undefined;
  if (target && target.title) return { text: target.title, target, unresolved: false };
  if (ref?.display) return { text: friendlyName(ref.display), unresolved: true };
  const u: Unresolvable | undefined = detail?.unresolved?.find((x) => x.reference === (ref?.reference ?? ''));
  if (u) return { text: u.text, unresolved: true };
  const type = key ? key.split('/')[0] : ref?.reference?.split(/[/?]/)[0];
  return { text: unresolvedText(type), unresolved: true };
}

/** A prescription's or statement's medication name: its code, else the Medication it names. */
export function medicationName(r: MedicationRequest | MedicationStatement, detail?: Refs): string {
  const byCode = conceptName(r.medicationCodeableConcept);
  if (byCode) return byCode;
  if (r.medicationReference) return refLabel(r.medicationReference, detail).text;
  return '';
}

export type Flag = 'high' | 'low' | 'abnormal' | 'critical' | 'normal' | '';

const FLAG_CODES: Record<string, Flag> = {
  H: 'high',
  HH: 'critical',
  HU: 'high',
  L: 'low',
  LL: 'critical',
  LU: 'low',
  A: 'abnormal',
  AA: 'critical',
  POS: 'abnormal',
  DET: 'abnormal',
  R: 'abnormal',
  N: 'normal',
  NEG: 'normal',
  ND: 'normal',
};

/** A result's flag: from its interpretation, else its value against its reference range. */
export function resultFlag(o: Observation): Flag {
  for (const cc of o.interpretation ?? []) {
    for (const c of cc.coding ?? []) {
      const f = c.code ? FLAG_CODES[c.code.toUpperCase()] : undefined;
      if (f) return f;
    }
    const t = (cc.text ?? '').toLowerCase();
    if (t.includes('high')) return 'high';
    if (t.includes('low')) return 'low';
    if (t.includes('abnormal')) return 'abnormal';
    if (t.includes('normal')) return 'normal';
  }
  const v = o.valueQuantity?.value;
  if (v === undefined) return '';
  const unit = quantityUnit(o.valueQuantity);
  for (const rr of o.referenceRange ?? []) {
    const ru = quantityUnit(rr.low) || quantityUnit(rr.high);
    if (ru && unit && ru !== unit) continue;
    if (rr.high?.value !== undefined && v > rr.high.value) return 'high';
    if (rr.low?.value !== undefined && v < rr.low.value) return 'low';
    if (rr.high?.value !== undefined || rr.low?.value !== undefined) return 'normal';
  }
  return '';
}

export function flagText(f: Flag): string {
  return { high: 'High', low: 'Low', abnormal: 'Abnormal', critical: 'Critical', normal: 'Normal', '': '' }[f];
}

export function isAbnormal(f: Flag): boolean {
  return f === 'high' || f === 'low' || f === 'abnormal' || f === 'critical';
}

/** A result's value and unit apart, for a table. */
export function valueAndUnit(o: Observation, locale?: string): { value: string; unit: string } {
  if (o.valueQuantity?.value !== undefined) {
    const cmp = o.valueQuantity.comparator ?? '';
    return { value: cmp + formatNumber(o.valueQuantity.value, locale), unit: quantityUnit(o.valueQuantity) };
  }
  return { value: '', unit: '' };
}

/** Which group of a visit's contents a record belongs to. */
export function visitGroup(type: string): string {
  switch (type) {
    case 'Condition':
      return 'Diagnoses';
    case 'Procedure':
      return 'Procedures';
    case 'Observation':
    case 'DiagnosticReport':
    case 'Specimen':
      return 'Tests and results';
    case 'MedicationRequest':
    case 'MedicationStatement':
    case 'MedicationAdministration':
    case 'MedicationDispense':
      return 'Medications';
    case 'Immunization':
      return 'Immunizations';
    case 'AllergyIntolerance':
      return 'Allergies';
    case 'CarePlan':
    case 'Goal':
    case 'CareTeam':
      return 'Care plans';
    case 'DocumentReference':
    case 'Media':
    case 'Communication':
      return 'Notes';
    case 'ImagingStudy':
      return 'Imaging';
    case 'Device':
      return 'Devices';
    case 'Claim':
    case 'ExplanationOfBenefit':
      return 'Costs';
    default:
      return 'Other records';
  }
}

export const VISIT_GROUP_ORDER = ['Diagnoses', 'Procedures', 'Tests and results', 'Medications', 'Immunizations', 'Allergies', 'Care plans', 'Notes', 'Imaging', 'Devices', 'Costs', 'Other records'];

/** The resource of a related record or reference target, typed. */
export function resourceOf<T extends FhirResource>(x: { resource?: FhirResource }): T | undefined {
  return x.resource as T | undefined;
}
