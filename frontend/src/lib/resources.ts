// Per-type knowledge: friendly names, the key fields of a detail view, a summary value for lists.
import type {
  AllergyIntolerance,
  CarePlan,
  Claim,
  Condition,
  DiagnosticReport,
  Dosage,
  DocumentReference,
  Encounter,
  ExplanationOfBenefit,
  FhirResource,
  Goal,
  ImagingStudy,
  Immunization,
  MedicationRequest,
  MedicationStatement,
  Observation,
  Organization,
  Patient,
  Practitioner,
  Procedure,
  Reference,
} from 'fhir/r4';
import type { ResourceItem } from '../api/types';
import {
  capitalise,
  conceptText,
  conceptsText,
  formatAddress,
  formatDate,
  formatDateTime,
  formatMoney,
  formatNumber,
  formatPeriod,
  formatQuantity,
  formatRange,
  formatRatio,
  formatTelecom,
  humanName,
  quantityUnit,
} from './format';
import { friendlyName } from './names';

export interface TypeInfo {
  label: string;
  singular: string;
  order: number;
}

const TYPES: Record<string, TypeInfo> = {
  Condition: { label: 'Conditions', singular: 'Condition', order: 1 },
  MedicationRequest: { label: 'Medications', singular: 'Medication', order: 2 },
  MedicationStatement: { label: 'Medication statements', singular: 'Medication statement', order: 3 },
  Observation: { label: 'Labs & observations', singular: 'Result', order: 4 },
  DiagnosticReport: { label: 'Reports', singular: 'Report', order: 5 },
  Procedure: { label: 'Procedures', singular: 'Procedure', order: 6 },
  Immunization: { label: 'Immunizations', singular: 'Immunization', order: 7 },
  AllergyIntolerance: { label: 'Allergies', singular: 'Allergy', order: 8 },
  Encounter: { label: 'Visits', singular: 'Visit', order: 9 },
  DocumentReference: { label: 'Documents', singular: 'Document', order: 10 },
  CarePlan: { label: 'Care plans', singular: 'Care plan', order: 11 },
  Goal: { label: 'Goals', singular: 'Goal', order: 12 },
  ImagingStudy: { label: 'Imaging studies', singular: 'Imaging study', order: 13 },
  Claim: { label: 'Claims', singular: 'Claim', order: 14 },
  ExplanationOfBenefit: { label: 'Explanations of benefit', singular: 'Explanation of benefit', order: 15 },
  Coverage: { label: 'Coverage', singular: 'Coverage', order: 16 },
  Device: { label: 'Devices', singular: 'Device', order: 17 },
  Patient: { label: 'Patient', singular: 'Patient', order: 30 },
  Practitioner: { label: 'Doctors', singular: 'Doctor', order: 31 },
  PractitionerRole: { label: 'Doctors’ roles', singular: 'Doctor’s role', order: 32 },
  Organization: { label: 'Clinics and organisations', singular: 'Clinic or organisation', order: 33 },
  Location: { label: 'Places', singular: 'Place', order: 34 },
};

/** "Observation" → friendly names; unknown types keep their FHIR name. */
export function typeInfo(type: string): TypeInfo {
  if (TYPES[type]) return TYPES[type];
  const spaced = type.replace(/([a-z])([A-Z])/g, '$1 $2');
  return { label: spaced, singular: spaced, order: 100 };
}

/** The type's label for a count of n: "1 Practitioner", "3 Practitioners". */
export function countLabel(type: string, n: number): string {
  const t = typeInfo(type);
  return n === 1 ? t.singular : t.label;
}

const MINOR = new Set(['Claim', 'ExplanationOfBenefit', 'Coverage', 'Patient', 'Practitioner', 'PractitionerRole', 'Organization', 'Location', 'Provenance']);

/** Billing and directory kinds (claims, insurance, doctors, clinics): shown smaller than health records. */
export function isMinorType(type: string): boolean {
  return MINOR.has(type);
}

/** Types with counts, in reading order: health records (known kinds first, the rest A–Z), then billing and directory kinds. */
export function orderedTypes(counts: Record<string, number>): string[] {
  return Object.keys(counts)
    .filter((t) => counts[t] > 0)
    .sort((a, b) => Number(isMinorType(a)) - Number(isMinorType(b)) || typeInfo(a).order - typeInfo(b).order || a.localeCompare(b));
}

export function observationValue(o: Observation, locale?: string): string {
  if (o.valueQuantity) return formatQuantity(o.valueQuantity, locale);
  if (o.valueCodeableConcept) return conceptText(o.valueCodeableConcept);
  if (o.valueString !== undefined) return o.valueString;
  if (o.valueBoolean !== undefined) return o.valueBoolean ? 'Yes' : 'No';
  if (o.valueInteger !== undefined) return formatNumber(o.valueInteger, locale);
  if (o.valueRange) return formatRange(o.valueRange, locale);
  if (o.valueRatio) return formatRatio(o.valueRatio, locale);
  if (o.valueDateTime) return formatDateTime(o.valueDateTime, locale);
  if (o.valueTime) return o.valueTime;
  if (o.valuePeriod) return formatPeriod(o.valuePeriod, locale);
  // Blood pressure reads systolic/diastolic whatever the order of the components.
  const rank = (c: { code?: { coding?: { code?: string }[] } }) => {
    const k = c.code?.coding?.map((x) => x.code) ?? [];
    return k.includes('8480-6') ? 0 : k.includes('8462-4') ? 1 : 2;
  };
  const comps = (o.component ?? []).filter((c) => c.valueQuantity?.value !== undefined).sort((a, b) => rank(a) - rank(b));
  if (comps.length === 2) {
    const u0 = quantityUnit(comps[0].valueQuantity);
    const u1 = quantityUnit(comps[1].valueQuantity);
    if (u0 === u1) {
      return `${formatNumber(comps[0].valueQuantity!.value!, locale)}/${formatNumber(comps[1].valueQuantity!.value!, locale)}${u0 ? ' ' + u0 : ''}`;
    }
  }
  if (comps.length) {
    return comps.map((c) => `${conceptText(c.code)} ${formatQuantity(c.valueQuantity, locale)}`).join(', ');
  }
  if (o.dataAbsentReason) return conceptText(o.dataAbsentReason);
  return '';
}

function medicationText(r: MedicationRequest | MedicationStatement): string {
  return friendlyName(conceptText(r.medicationCodeableConcept) || r.medicationReference?.display);
}

const ENCOUNTER_CLASSES: Record<string, string> = {
  AMB: 'Outpatient visit',
  EMER: 'Emergency',
  IMP: 'Hospital stay',
  ACUTE: 'Hospital stay',
  NONAC: 'Hospital stay',
  OBSENC: 'Observation stay',
  PRENC: 'Pre-admission',
  SS: 'Short stay',
  VR: 'Virtual visit',
  HH: 'Home visit',
  FLD: 'Field visit',
};

/** A visit's class in words ("AMB" → "Outpatient visit"). */
export function encounterClass(code: string | undefined, display?: string): string {
  const c = (code ?? '').toUpperCase();
  if (ENCOUNTER_CLASSES[c]) return ENCOUNTER_CLASSES[c];
  if (display && display.toUpperCase() !== c) return capitalise(display);
  return '';
}

/** A short value shown next to the title in lists and the timeline. */
export function summaryValue(item: ResourceItem, locale?: string): string {
  const r = item.resource as FhirResource;
  switch (r.resourceType) {
    case 'Observation':
      return observationValue(r, locale);
    case 'Condition':
      return capitalise(conceptText(r.clinicalStatus));
    case 'AllergyIntolerance':
      return r.criticality ? `${capitalise(r.criticality)} criticality` : conceptText(r.clinicalStatus);
    case 'Encounter':
      return encounterClass(r.class?.code, r.class?.display);
    case 'Claim':
      return formatMoney(r.total, locale);
    case 'ExplanationOfBenefit':
      return formatMoney(r.total?.[0]?.amount, locale);
    case 'ImagingStudy':
      return [(r.modality ?? []).map((m) => m.display || m.code).filter(Boolean).join(', '), r.numberOfInstances ? `${r.numberOfInstances} images` : '']
        .filter(Boolean)
        .join(' · ');
    default: {
      const s = (r as { status?: string }).status;
      return s ? capitalise(s) : '';
    }
  }
}

/** Display title when the API's `title` is missing. */
export function resourceTitle(item: ResourceItem): string {
  if (item.title) return item.title;
  const r = item.resource as FhirResource;
  switch (r.resourceType) {
    case 'Patient':
    case 'Practitioner':
      return humanName(r.name) || r.resourceType;
    case 'Organization':
      return r.name || 'Organization';
    case 'MedicationRequest':
    case 'MedicationStatement':
      return medicationText(r) || typeInfo(r.resourceType).singular;
    case 'Immunization':
      return conceptText(r.vaccineCode) || 'Immunization';
    case 'Encounter':
      return conceptsText(r.type) || 'Encounter';
    case 'Claim':
    case 'ExplanationOfBenefit':
      return conceptText(r.type) || typeInfo(r.resourceType).singular;
    case 'CarePlan':
      return r.title || conceptsText(r.category) || 'Care plan';
    case 'Goal':
      return conceptText(r.description) || 'Goal';
    case 'DocumentReference':
      return r.description || conceptText(r.type) || 'Document';
    case 'ImagingStudy':
      return r.description || conceptsText(r.procedureCode) || 'Imaging study';
    default: {
      const code = (r as { code?: { text?: string; coding?: { display?: string; code?: string }[] } }).code;
      return conceptText(code as never) || typeInfo(item.type).singular;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Key fields of the detail view

export interface Field {
  label: string;
  value?: string;
  refs?: Reference[];
}

function push(out: Field[], label: string, value: string | undefined | null) {
  if (value !== undefined && value !== null && String(value).trim() !== '') out.push({ label, value: String(value) });
}

function pushRefs(out: Field[], label: string, refs: (Reference | undefined)[] | undefined) {
  const list = (refs ?? []).filter((r): r is Reference => !!r && !!(r.reference || r.display));
  if (list.length) out.push({ label, refs: list });
}

export function keyFields(resource: FhirResource, locale?: string): Field[] {
  const f: Field[] = [];
  const r = resource;
  const d = (s?: string) => formatDateTime(s, locale);
  switch (r.resourceType) {
    case 'Patient': {
      const p = r as Patient;
      push(f, 'Name', humanName(p.name));
      push(f, 'Born', formatDate(p.birthDate, locale));
      push(f, 'Gender', capitalise(p.gender));
      if (p.deceasedDateTime) push(f, 'Died', formatDate(p.deceasedDateTime, locale));
      else if (p.deceasedBoolean) push(f, 'Died', 'Yes');
      push(f, 'Address', formatAddress(p.address?.[0]));
      push(f, 'Phone', formatTelecom(p.telecom));
      push(f, 'Marital status', conceptText(p.maritalStatus));
      push(f, 'Language', conceptText(p.communication?.[0]?.language));
      break;
    }
    case 'Condition': {
      const c = r as Condition;
      push(f, 'Condition', conceptText(c.code));
      push(f, 'Clinical status', conceptText(c.clinicalStatus));
      push(f, 'Verification', conceptText(c.verificationStatus));
      push(f, 'Category', conceptsText(c.category));
      push(f, 'Severity', conceptText(c.severity));
      push(f, 'Onset', c.onsetDateTime ? d(c.onsetDateTime) : c.onsetString || formatPeriod(c.onsetPeriod, locale));
      push(f, 'Resolved', c.abatementDateTime ? d(c.abatementDateTime) : c.abatementString);
      push(f, 'Recorded', d(c.recordedDate));
      pushRefs(f, 'Visit', [c.encounter]);
      break;
    }
    case 'Observation': {
      const o = r as Observation;
      push(f, 'Test', conceptText(o.code));
      push(f, 'Value', observationValue(o, locale));
      push(f, 'Normal range', (o.referenceRange ?? []).map((rr) => rr.text || formatRange({ low: rr.low, high: rr.high }, locale)).filter(Boolean).join('; '));
      push(f, 'Interpretation', conceptsText(o.interpretation));
      push(f, 'Date', o.effectiveDateTime ? d(o.effectiveDateTime) : o.effectiveInstant ? d(o.effectiveInstant) : formatPeriod(o.effectivePeriod, locale));
      push(f, 'Issued', d(o.issued));
      push(f, 'Status', capitalise(o.status));
      push(f, 'Category', conceptsText(o.category));
      for (const c of o.component ?? []) {
        push(f, conceptText(c.code) || 'Component', c.valueQuantity ? formatQuantity(c.valueQuantity, locale) : conceptText(c.valueCodeableConcept) || c.valueString);
      }
      pushRefs(f, 'Performer', o.performer);
      pushRefs(f, 'Visit', [o.encounter]);
      break;
    }
    case 'MedicationRequest':
    case 'MedicationStatement': {
      const m = r as MedicationRequest | MedicationStatement;
      if (!conceptText(m.medicationCodeableConcept) && m.medicationReference) pushRefs(f, 'Medication', [m.medicationReference]);
      else push(f, 'Medication', medicationText(m));
      push(f, 'Status', capitalise(m.status));
      if (m.resourceType === 'MedicationRequest') {
        push(f, 'Intent', capitalise(m.intent));
        push(f, 'Prescribed', d(m.authoredOn));
        push(f, 'Dose and instructions', (m.dosageInstruction ?? []).map((x) => dosageWords(x, locale)).filter(Boolean).join('; '));
        push(f, 'Reason', conceptsText(m.reasonCode));
        pushRefs(f, 'Reason', m.reasonReference);
        pushRefs(f, 'Prescriber', [m.requester]);
        pushRefs(f, 'Visit', [m.encounter]);
      } else {
        push(f, 'Taken', m.effectiveDateTime ? d(m.effectiveDateTime) : formatPeriod(m.effectivePeriod, locale));
        push(f, 'Dose and instructions', (m.dosage ?? []).map((x) => dosageWords(x, locale)).filter(Boolean).join('; '));
        push(f, 'Reason', conceptsText(m.reasonCode));
      }
      break;
    }
    case 'Procedure': {
      const p = r as Procedure;
      push(f, 'Procedure', conceptText(p.code));
      push(f, 'Status', capitalise(p.status));
      push(f, 'Performed', p.performedDateTime ? d(p.performedDateTime) : formatPeriod(p.performedPeriod, locale) || p.performedString);
      push(f, 'Reason', conceptsText(p.reasonCode));
      pushRefs(f, 'Reason', p.reasonReference);
      push(f, 'Body site', conceptsText(p.bodySite));
      pushRefs(f, 'Location', [p.location]);
      pushRefs(f, 'Visit', [p.encounter]);
      break;
    }
    case 'Immunization': {
      const i = r as Immunization;
      push(f, 'Vaccine', conceptText(i.vaccineCode));
      push(f, 'Date', i.occurrenceDateTime ? d(i.occurrenceDateTime) : i.occurrenceString);
      push(f, 'Status', capitalise(i.status));
      push(f, 'Lot number', i.lotNumber);
      push(f, 'Dose', formatQuantity(i.doseQuantity, locale));
      push(f, 'Site', conceptText(i.site));
      pushRefs(f, 'Location', [i.location]);
      pushRefs(f, 'Visit', [i.encounter]);
      break;
    }
    case 'Encounter': {
      const e = r as Encounter;
      push(f, 'Type', conceptsText(e.type));
      push(f, 'When', formatPeriod(e.period, locale));
      push(f, 'Kind of visit', encounterClass(e.class?.code, e.class?.display));
      pushRefs(f, 'With', (e.participant ?? []).map((p) => p.individual));
      pushRefs(f, 'Where', (e.location ?? []).map((l) => l.location));
      pushRefs(f, 'Clinic', [e.serviceProvider]);
      push(f, 'Why', conceptsText(e.reasonCode));
      pushRefs(f, 'Why', e.reasonReference);
      if (e.status !== 'finished') push(f, 'Status', capitalise(e.status));
      break;
    }
    case 'AllergyIntolerance': {
      const a = r as AllergyIntolerance;
      push(f, 'Allergy to', conceptText(a.code));
      push(f, 'Clinical status', conceptText(a.clinicalStatus));
      push(f, 'Verification', conceptText(a.verificationStatus));
      push(f, 'Type', capitalise(a.type));
      push(f, 'Category', (a.category ?? []).map(capitalise).join(', '));
      push(f, 'Criticality', capitalise(a.criticality));
      push(f, 'Reactions', (a.reaction ?? []).flatMap((x) => (x.manifestation ?? []).map(conceptText)).filter(Boolean).join(', '));
      push(f, 'Since', a.onsetDateTime ? d(a.onsetDateTime) : undefined);
      push(f, 'Recorded', d(a.recordedDate));
      break;
    }
    case 'DiagnosticReport': {
      const x = r as DiagnosticReport;
      push(f, 'Report', conceptText(x.code));
      push(f, 'Status', capitalise(x.status));
      push(f, 'Category', conceptsText(x.category));
      push(f, 'Date', x.effectiveDateTime ? d(x.effectiveDateTime) : formatPeriod(x.effectivePeriod, locale));
      push(f, 'Issued', d(x.issued));
      push(f, 'Conclusion', x.conclusion);
      if (!(x.result ?? []).some((ref) => ref.reference)) pushRefs(f, 'Results', x.result); // else: the results table
      pushRefs(f, 'Performer', x.performer);
      pushRefs(f, 'Visit', [x.encounter]);
      break;
    }
    case 'DocumentReference': {
      const x = r as DocumentReference;
      push(f, 'Type', conceptText(x.type));
      push(f, 'Description', x.description);
      push(f, 'Status', capitalise(x.status));
      push(f, 'Date', d(x.date));
      push(f, 'Category', conceptsText(x.category));
      pushRefs(f, 'Author', x.author);
      // Attachments: their own section on the detail page (opened in the app).
      break;
    }
    case 'Claim': {
      const c = r as Claim;
      push(f, 'Type', conceptText(c.type));
      push(f, 'Status', capitalise(c.status));
      push(f, 'Use', capitalise(c.use));
      push(f, 'Created', d(c.created));
      push(f, 'Billable period', formatPeriod(c.billablePeriod, locale));
      push(f, 'Total', formatMoney(c.total, locale));
      push(f, 'Items', (c.item ?? []).map((i) => conceptText(i.productOrService)).filter(Boolean).join(', '));
      pushRefs(f, 'Provider', [c.provider]);
      pushRefs(f, 'Insurer', [c.insurer]);
      break;
    }
    case 'ExplanationOfBenefit': {
      const e = r as ExplanationOfBenefit;
      push(f, 'Type', conceptText(e.type));
      push(f, 'Status', capitalise(e.status));
      push(f, 'Outcome', capitalise(e.outcome));
      push(f, 'Created', d(e.created));
      push(f, 'Billable period', formatPeriod(e.billablePeriod, locale));
      for (const t of e.total ?? []) push(f, conceptText(t.category) ? `Total (${conceptText(t.category)})` : 'Total', formatMoney(t.amount, locale));
      push(f, 'Payment', formatMoney(e.payment?.amount, locale));
      pushRefs(f, 'Insurer', [e.insurer]);
      pushRefs(f, 'Provider', [e.provider]);
      pushRefs(f, 'Claim', [e.claim]);
      break;
    }
    case 'CarePlan': {
      const c = r as CarePlan;
      push(f, 'Plan', c.title || conceptsText(c.category));
      push(f, 'Status', capitalise(c.status));
      push(f, 'Intent', capitalise(c.intent));
      push(f, 'Period', formatPeriod(c.period, locale));
      push(f, 'Activities', (c.activity ?? []).map((a) => conceptText(a.detail?.code)).filter(Boolean).join(', '));
      pushRefs(f, 'Addresses', c.addresses);
      pushRefs(f, 'Goals', c.goal);
      break;
    }
    case 'Goal': {
      const g = r as Goal;
      push(f, 'Goal', conceptText(g.description));
      push(f, 'Status', capitalise(g.lifecycleStatus));
      push(f, 'Achievement', conceptText(g.achievementStatus));
      push(f, 'Start', g.startDate ? formatDate(g.startDate, locale) : undefined);
      push(
        f,
        'Target',
        (g.target ?? [])
          .map((t) => [conceptText(t.measure), t.detailQuantity ? formatQuantity(t.detailQuantity, locale) : t.detailRange ? formatRange(t.detailRange, locale) : '', t.dueDate ? `by ${formatDate(t.dueDate, locale)}` : ''].filter(Boolean).join(' '))
          .filter(Boolean)
          .join('; '),
      );
      pushRefs(f, 'Addresses', g.addresses);
      break;
    }
    case 'ImagingStudy': {
      const s = r as ImagingStudy;
      push(f, 'Study', s.description || conceptsText(s.procedureCode));
      push(f, 'Started', d(s.started));
      push(f, 'Status', capitalise(s.status));
      push(f, 'Modality', (s.modality ?? []).map((m) => m.display || m.code).filter(Boolean).join(', ') || (s.series ?? []).map((x) => x.modality?.display || x.modality?.code).filter(Boolean).join(', '));
      push(f, 'Body site', (s.series ?? []).map((x) => x.bodySite?.display).filter(Boolean).join(', '));
      push(f, 'Series', s.numberOfSeries !== undefined ? String(s.numberOfSeries) : s.series ? String(s.series.length) : undefined);
      push(f, 'Images', s.numberOfInstances !== undefined ? String(s.numberOfInstances) : undefined);
      pushRefs(f, 'Visit', [s.encounter]);
      break;
    }
    case 'Organization': {
      const o = r as Organization;
      push(f, 'Name', o.name);
      push(f, 'Type', conceptsText(o.type));
      push(f, 'Address', formatAddress(o.address?.[0]));
      push(f, 'Phone', formatTelecom(o.telecom));
      break;
    }
    case 'Practitioner': {
      const p = r as Practitioner;
      push(f, 'Name', humanName(p.name));
      push(f, 'Gender', capitalise(p.gender));
      push(f, 'Address', formatAddress(p.address?.[0]));
      push(f, 'Phone', formatTelecom(p.telecom));
      push(f, 'Qualification', (p.qualification ?? []).map((q) => conceptText(q.code)).filter(Boolean).join(', '));
      break;
    }
    default: {
      const x = r as unknown as { status?: string; code?: never; category?: never; date?: string; subject?: Reference };
      push(f, 'Type', r.resourceType);
      push(f, 'Code', conceptText(x.code));
      push(f, 'Status', capitalise(x.status));
      push(f, 'Date', d(x.date));
    }
  }
  return f;
}

/** A dosage in words: its text, else dose, timing, route and "as needed". */
export function dosageWords(x: Dosage, locale?: string): string {
  const parts: string[] = [];
  const dr = x.doseAndRate?.[0];
  if (dr?.doseQuantity) parts.push(formatQuantity(dr.doseQuantity, locale));
  else if (dr?.doseRange) parts.push(formatRange(dr.doseRange, locale));
  const timing = dosageText(x.timing?.repeat, x.asNeededBoolean);
  if (timing) parts.push(timing);
  if (x.route) parts.push(conceptText(x.route).toLowerCase());
  const words = parts.filter(Boolean).join(', ');
  const extra = (x.additionalInstruction ?? []).map(conceptText).filter(Boolean).join(', ');
  if (x.text) return [x.text, extra].filter(Boolean).join('. ');
  return [words, x.patientInstruction, extra].filter(Boolean).join('. ');
}

function dosageText(rep: { frequency?: number; period?: number; periodUnit?: string } | undefined, asNeeded?: boolean): string {
  const parts: string[] = [];
  if (rep?.frequency && rep.period && rep.periodUnit) {
    const units: Record<string, string> = { s: 'second', min: 'minute', h: 'hour', d: 'day', wk: 'week', mo: 'month', a: 'year' };
    const u = units[rep.periodUnit] ?? rep.periodUnit;
    parts.push(`${rep.frequency} time${rep.frequency === 1 ? '' : 's'} every ${rep.period === 1 ? '' : rep.period + ' '}${u}${rep.period === 1 ? '' : 's'}`);
  }
  if (asNeeded) parts.push('as needed');
  return parts.join(', ');
}
