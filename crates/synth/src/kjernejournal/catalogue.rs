//! What the synthetic records say: critical information, medicines, vaccines, hospital
//! contacts, discharge diagnoses and the citizens' own notes, with their codes.

use std::ops::RangeInclusive;

pub enum Critical {
    /// An immediate-type allergy, with its FHIR category.
    Allergy(&'static str),
    /// A serious condition or a complication with anaesthesia, as the critical-type code.
    Condition(&'static str),
    /// An implant, with a note for whoever treats the patient.
    Implant(&'static str),
}

pub struct CriticalItem {
    pub kind: Critical,
    pub code: &'static str,
    pub display: &'static str,
    pub text: &'static str,
    pub ages: RangeInclusive<u32>,
    /// How common, relative to the others: most critical information is allergies.
    pub weight: u32,
}

const fn item(
    kind: Critical,
    code: &'static str,
    display: &'static str,
    text: &'static str,
    ages: RangeInclusive<u32>,
    weight: u32,
) -> CriticalItem {
    CriticalItem {
        kind,
        code,
        display,
        text,
        ages,
        weight,
    }
}

const ALL_AGES: RangeInclusive<u32> = 0..=u32::MAX;
const SERIOUS: &str = "serious-condition";
const ANAESTHESIA: &str = "anaesthesia-complication";

/// SNOMED CT codes: substances for allergies, disorders and findings for conditions, physical
/// objects for implants.
#[rustfmt::skip]
pub static CRITICAL_ITEMS: [CriticalItem; 16] = [
    item(Critical::Allergy("medication"), "764146007", "Penicillin", "Penicillinallergi", ALL_AGES, 30),
    item(Critical::Allergy("food"), "256349002", "Peanut", "Peanøttallergi", ALL_AGES, 10),
    item(Critical::Allergy("food"), "13577000", "Nut", "Nøtteallergi", ALL_AGES, 8),
    item(Critical::Allergy("environment"), "256440004", "Wasp venom", "Allergi mot vepsestikk", ALL_AGES, 8),
    item(Critical::Allergy("environment"), "111088007", "Latex", "Lateksallergi", ALL_AGES, 4),
    item(Critical::Condition(SERIOUS), "84757009", "Epilepsy", "Epilepsi", ALL_AGES, 8),
    item(Critical::Condition(SERIOUS), "46635009", "Diabetes mellitus type 1", "Diabetes type 1", ALL_AGES, 8),
    item(Critical::Condition(SERIOUS), "90935002", "Hemophilia", "Blødersykdom (hemofili)", ALL_AGES, 1),
    item(Critical::Condition(SERIOUS), "363732003", "Addison's disease", "Binyrebarksvikt (Addisons sykdom)", ALL_AGES, 2),
    item(Critical::Condition(ANAESTHESIA), "405501007", "Malignant hyperthermia", "Malign hypertermi", ALL_AGES, 2),
    item(Critical::Condition(ANAESTHESIA), "718447001", "Difficult tracheal intubation", "Vanskelig intubasjon", ALL_AGES, 4),
    item(Critical::Condition(ANAESTHESIA), "360631004", "Pseudocholinesterase deficiency", "Forlenget apné etter suksametonium", ALL_AGES, 2),
    item(Critical::Implant("Kontroll ved pacemakerpoliklinikken en gang i året."), "14106009", "Cardiac pacemaker", "Pacemaker", 50..=u32::MAX, 6),
    item(Critical::Implant("Slås av før kirurgi med diatermi."), "72506001", "Implantable defibrillator", "Implanterbar defibrillator (ICD)", 30..=u32::MAX, 3),
    item(Critical::Implant("Bruker warfarin; INR-mål 2,5 til 3,5."), "25510005", "Cardiac valve prosthesis", "Mekanisk hjerteklaff", 30..=u32::MAX, 3),
    item(Critical::Implant("MR bare etter avtale med øre-nese-hals-avdelingen."), "43252007", "Cochlear prosthesis", "Cochleaimplantat", ALL_AGES, 1),
];

pub struct Drug {
    pub atc: &'static str,
    /// The ATC index's name of the substance.
    pub substance: &'static str,
    pub text: &'static str,
    pub dosage: &'static str,
    pub ages: RangeInclusive<u32>,
}

const fn drug(
    atc: &'static str,
    substance: &'static str,
    text: &'static str,
    dosage: &'static str,
    ages: RangeInclusive<u32>,
) -> Drug {
    Drug {
        atc,
        substance,
        text,
        dosage,
        ages,
    }
}

#[rustfmt::skip]
pub static DRUGS: [Drug; 13] = [
    drug("C10AA05", "atorvastatin", "Atorvastatin 20 mg tabletter", "1 tablett om kvelden", 40..=u32::MAX),
    drug("A10BA02", "metformin", "Metformin 500 mg tabletter", "1 tablett 2 ganger daglig", 40..=u32::MAX),
    drug("C07AB02", "metoprolol", "Metoprolol 50 mg depottabletter", "1 tablett daglig", 40..=u32::MAX),
    drug("C09CA01", "losartan", "Losartan 50 mg tabletter", "1 tablett daglig", 40..=u32::MAX),
    drug("B01AC06", "acetylsalicylic acid", "Acetylsalisylsyre 75 mg tabletter", "1 tablett daglig", 50..=u32::MAX),
    drug("H03AA01", "levothyroxine sodium", "Levotyroksin 50 mikrogram tabletter", "1 tablett om morgenen", 18..=u32::MAX),
    drug("N06AB10", "escitalopram", "Escitalopram 10 mg tabletter", "1 tablett daglig", 18..=u32::MAX),
    drug("A02BC02", "pantoprazole", "Pantoprazol 20 mg enterotabletter", "1 tablett daglig før frokost", 18..=u32::MAX),
    drug("N02BE01", "paracetamol", "Paracetamol 500 mg tabletter", "1 til 2 tabletter ved behov, høyst 8 i døgnet", 12..=u32::MAX),
    drug("J01CE02", "phenoxymethylpenicillin", "Fenoksymetylpenicillin 1 g tabletter", "1 tablett 4 ganger daglig i 7 dager", 12..=u32::MAX),
    drug("R06AE07", "cetirizine", "Cetirizin 10 mg tabletter", "1 tablett daglig ved behov", 6..=u32::MAX),
    drug("R03AC02", "salbutamol", "Salbutamol 0,1 mg/dose inhalasjonsaerosol", "1 til 2 inhalasjoner ved behov", 2..=u32::MAX),
    drug("J01CA04", "amoxicillin", "Amoksicillin mikstur 50 mg/ml", "5 ml 3 ganger daglig i 7 dager", 0..=11),
];

/// A vaccine: its ATC code, the ATC index's name and the Norwegian text.
pub type Vaccine = (&'static str, &'static str, &'static str);

pub const INFLUENZA: Vaccine = (
    "J07BB02",
    "influenza, inactivated, split virus or surface antigen",
    "Influensavaksine",
);
pub const COVID_19: Vaccine = ("J07BX03", "covid-19, vaccines", "Koronavaksine (covid-19)");
pub const PNEUMOCOCCAL: Vaccine = (
    "J07AL02",
    "pneumococcus purified polysaccharides antigen conjugated",
    "Pneumokokkvaksine (konjugert)",
);
/// The childhood programme's combined vaccine, given at 3, 5 and 12 months.
pub const INFANTS: Vaccine = (
    "J07CA09",
    "diphtheria-hemophilus influenzae B-pertussis-poliomyelitis-tetanus-hepatitis B",
    "Vaksine mot difteri, stivkrampe, kikhoste, polio, Hib og hepatitt B",
);

pub struct Class {
    pub code: &'static str,
    pub display: &'static str,
    pub weight: u32,
    pub minutes: RangeInclusive<i64>,
}

/// Encounter classes (v3 ActCode): most contacts are outpatient visits. Inpatient is second:
/// ongoing stays are of that class.
#[rustfmt::skip]
pub static CLASSES: [Class; 3] = [
    Class { code: "AMB", display: "ambulatory", weight: 70, minutes: 20..=180 },
    Class { code: "IMP", display: "inpatient encounter", weight: 20, minutes: 24 * 60..=14 * 24 * 60 },
    Class { code: "EMER", display: "emergency", weight: 10, minutes: 60..=12 * 60 },
];

/// A discharge summary's diagnosis, course and the ages it fits.
#[rustfmt::skip]
pub static DIAGNOSES: [(&str, &str, RangeInclusive<u32>); 8] = [
    ("Bronkiolitt", "Fikk oksygen og sondeernæring i to døgn. Spiser og puster godt ved utreise.", 0..=1),
    ("Lungebetennelse", "Behandlet med antibiotika intravenøst i tre døgn, deretter tabletter. Feberfri ved utreise.", 2..=u32::MAX),
    ("Akutt blindtarmbetennelse", "Operert med kikkhull dagen etter innleggelse. Ukomplisert forløp.", 5..=u32::MAX),
    ("Forverring av hjertesvikt", "Vanndrivende intravenøst med god effekt, gått ned tre kilo. Dosen er justert.", 60..=u32::MAX),
    ("Lårhalsbrudd", "Operert med protese dagen etter innleggelse. Går med rullator.", 65..=u32::MAX),
    ("Atrieflimmer", "Elektrokonvertert til sinusrytme. Startet med blodfortynnende.", 50..=u32::MAX),
    ("Forverring av kols", "Inhalasjoner, kortison og antibiotika. Bedre ved utreise.", 50..=u32::MAX),
    ("Hjerneinfarkt", "Trombolysebehandlet. Lett nedsatt kraft i høyre hånd; henvist til rehabilitering.", 50..=u32::MAX),
];

pub static OWN_NOTES: [&str; 8] = [
    "Jeg har tolkebehov.",
    "Jeg bruker høreapparat.",
    "Jeg ser dårlig og trenger skriftlig informasjon i stor skrift.",
    "Jeg er organdonor, og familien min vet det.",
    "Jeg har sprøyteskrekk og vil gjerne bli forberedt.",
    "Jeg ønsker at min nærmeste pårørende varsles ved innleggelse.",
    "Jeg bruker rullestol.",
    "Jeg har autisme og trenger rolige omgivelser og god tid.",
];
