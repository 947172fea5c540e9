package fhir

import "regexp"

// r4Types are the concrete resource types of FHIR R4 (4.0.1).
var r4Types = map[string]bool{}

func init() {
	for _, t := range []string{
		"Account", "ActivityDefinition", "AdverseEvent", "AllergyIntolerance", "Appointment",
		"AppointmentResponse", "AuditEvent", "Basic", "Binary", "BiologicallyDerivedProduct",
		"BodyStructure", "Bundle", "CapabilityStatement", "CarePlan", "CareTeam", "CatalogEntry",
		"ChargeItem", "ChargeItemDefinition", "Claim", "ClaimResponse", "ClinicalImpression",
		"CodeSystem", "Communication", "CommunicationRequest", "CompartmentDefinition", "Composition",
		"ConceptMap", "Condition", "Consent", "Contract", "Coverage", "CoverageEligibilityRequest",
		"CoverageEligibilityResponse", "DetectedIssue", "Device", "DeviceDefinition", "DeviceMetric",
		"DeviceRequest", "DeviceUseStatement", "DiagnosticReport", "DocumentManifest",
		"DocumentReference", "EffectEvidenceSynthesis", "Encounter", "Endpoint", "EnrollmentRequest",
		"EnrollmentResponse", "EpisodeOfCare", "EventDefinition", "Evidence", "EvidenceVariable",
		"ExampleScenario", "ExplanationOfBenefit", "FamilyMemberHistory", "Flag", "Goal",
		"GraphDefinition", "Group", "GuidanceResponse", "HealthcareService", "ImagingStudy",
		"Immunization", "ImmunizationEvaluation", "ImmunizationRecommendation", "ImplementationGuide",
		"InsurancePlan", "Invoice", "Library", "Linkage", "List", "Location", "Measure",
		"MeasureReport", "Media", "Medication", "MedicationAdministration", "MedicationDispense",
		"MedicationKnowledge", "MedicationRequest", "MedicationStatement", "MedicinalProduct",
		"MedicinalProductAuthorization", "MedicinalProductContraindication",
		"MedicinalProductIndication", "MedicinalProductIngredient", "MedicinalProductInteraction",
		"MedicinalProductManufactured", "MedicinalProductPackaged", "MedicinalProductPharmaceutical",
		"MedicinalProductUndesirableEffect", "MessageDefinition", "MessageHeader",
		"MolecularSequence", "NamingSystem", "NutritionOrder", "Observation", "ObservationDefinition",
		"OperationDefinition", "OperationOutcome", "Organization", "OrganizationAffiliation",
		"Parameters", "Patient", "PaymentNotice", "PaymentReconciliation", "Person", "PlanDefinition",
		"Practitioner", "PractitionerRole", "Procedure", "Provenance", "Questionnaire",
		"QuestionnaireResponse", "RelatedPerson", "RequestGroup", "ResearchDefinition",
		"ResearchElementDefinition", "ResearchStudy", "ResearchSubject", "RiskAssessment",
		"RiskEvidenceSynthesis", "Schedule", "SearchParameter", "ServiceRequest", "Slot", "Specimen",
		"SpecimenDefinition", "StructureDefinition", "StructureMap", "Subscription", "Substance",
		"SubstanceNucleicAcid", "SubstancePolymer", "SubstanceProtein",
		"SubstanceReferenceInformation", "SubstanceSourceMaterial", "SubstanceSpecification",
		"SupplyDelivery", "SupplyRequest", "Task", "TerminologyCapabilities", "TestReport",
		"TestScript", "ValueSet", "VerificationResult", "VisionPrescription",
	} {
		r4Types[t] = true
	}
}

// KnownType reports whether t is a concrete FHIR R4 resource type.
func KnownType(t string) bool { return r4Types[t] }

// KnownTypes returns how many resource types are known (for tests and docs).
func KnownTypes() int { return len(r4Types) }

var idRE = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// ValidID reports whether id matches the FHIR id rule [A-Za-z0-9\-\.]{1,64}.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// A ValidID implementation by hand is faster than the regexp; the regexp documents the rule and
// a test checks both agree.
var _ = idRE
