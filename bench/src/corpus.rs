//! A reproducible chat-like corpus: Zipf-distributed words (a few very common, a long tail of rare
//! ones), four in five messages in a Latin script and one in five in Chinese, spread over apps and
//! conversations. Seeded, so every run indexes the same text.

use caas_shared::domain::model::Message;

/// xorshift64*: fast, seedable and good enough to pick words.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// An index in `0..n` with probability roughly proportional to 1/(rank+1) (Zipf, s = 1).
    pub fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64 + 1.0).powf(u) - 1.0).floor() as usize % n
    }
}

const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "ne", "ru", "ta", "so", "vi", "en", "da", "po", "li", "ar", "be", "ch", "do", "gu", "ho", "is",
    "ju", "ke", "ma", "or", "st",
];
const COMMON_HAN: &str = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴";

pub struct Corpus {
    words: Vec<String>,
    han: Vec<char>,
    pub apps: usize,
    pub conversations_per_app: usize,
}

impl Corpus {
    pub fn new(vocabulary: usize, apps: usize, conversations_per_app: usize) -> Self {
        let mut rng = Rng::new(7);
        let mut words = Vec::with_capacity(vocabulary);
        let mut seen = std::collections::HashSet::new();
        while words.len() < vocabulary {
            let syllables = 1 + rng.below(4);
            let word: String = (0..syllables).map(|_| SYLLABLES[rng.below(SYLLABLES.len())]).collect();
            if seen.insert(word.clone()) {
                words.push(word);
            }
        }
        Self {
            words,
            han: COMMON_HAN.chars().collect(),
            apps,
            conversations_per_app,
        }
    }

    pub fn text(&self, rng: &mut Rng) -> String {
        if rng.below(5) == 0 {
            let length = 4 + rng.below(20);
            (0..length).map(|_| self.han[rng.zipf(self.han.len())]).collect()
        } else {
            let length = 3 + rng.below(15);
            let words: Vec<&str> = (0..length)
                .map(|_| self.words[rng.zipf(self.words.len())].as_str())
                .collect();
            words.join(" ")
        }
    }

    pub fn conversation_id(app: usize, conversation: usize) -> String {
        format!("conv-{app}-{conversation}")
    }

    pub fn app_id(app: usize) -> String {
        format!("app-{app}")
    }

    /// Message number `n` (seq and time grow with `n`).
    pub fn message(&self, rng: &mut Rng, n: usize) -> Message {
        let app = rng.below(self.apps);
        let conversation = rng.below(self.conversations_per_app);
        Message {
            id: format!("msg-{n}"),
            app_id: Self::app_id(app),
            conversation_id: Self::conversation_id(app, conversation),
            seq: n as i64 + 1,
            sender_id: format!("user-{}", rng.below(1_000)),
            client_msg_id: format!("c-{n}"),
            text: self.text(rng),
            created_at: 1_700_000_000_000 + n as i64 * 100,
            ..Message::default()
        }
    }
}
