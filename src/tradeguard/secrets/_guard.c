/* The redactor's guard phase in one pass over an ASCII line.
 *
 * `rules(text)` answers "which redaction rules could match here?" as a bit mask, exactly as
 * tradeguard.secrets.guards.rules_py does (a test holds the two equal on generated text). It
 * does not redact: every rule it admits runs in Python. Almost every log line admits none, and
 * for those this replaces ~25 interpreted substring tests with one C call.
 *
 * It reads only ASCII strings (one byte per character, PyUnicode_1BYTE_DATA) and every read is
 * bounded by the string's length; anything else is refused with TypeError/ValueError so the
 * caller falls back to the Python guard.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* Bits: the same values as tradeguard.secrets.guards. */
enum {
    PEM = 1 << 0,
    BEARER = 1 << 1,
    BASIC = 1 << 2,
    JWT = 1 << 3,
    URL_PASSWORD = 1 << 4,
    SLACK = 1 << 5,
    AWS = 1 << 6,
    TELEGRAM = 1 << 7,
    HEX_KEY = 1 << 8,
    MNEMONIC = 1 << 9,
    FIELD = 1 << 10,
};

#define TELEGRAM_MIN_LEN 44 /* 8 digits, a colon, 35 characters */
#define TELEGRAM_HEAD 8     /* hex-class characters right before a colon */
#define HEX_RUN 64
#define WORD_RUN_MIN 47 /* twelve 3-letter words and 11 spaces */
#define MNEMONIC_SPACES 11

static unsigned char lowered[256]; /* ASCII lower case; filled by init_tables() */

static inline unsigned char lower(unsigned char c) { return lowered[c]; }

static inline int is_lower_letter(unsigned char c) { return c >= 'a' && c <= 'z'; }

static inline int is_hex(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Does the lower-cased text at s[i..] start with `word` (given in lower case, `len` bytes)? */
static inline int at_ci_len(const unsigned char *s, Py_ssize_t n, Py_ssize_t i, const char *word,
                            Py_ssize_t len) {
    if (len > n - i) {
        return 0;
    }
    for (Py_ssize_t k = 0; k < len; k++) {
        if (lower(s[i + k]) != (unsigned char)word[k]) {
            return 0;
        }
    }
    return 1;
}

/* The same, case-sensitive (AWS key id prefixes). */
static inline int at_cs_len(const unsigned char *s, Py_ssize_t n, Py_ssize_t i, const char *word,
                            Py_ssize_t len) {
    return len <= n - i && memcmp(s + i, word, (size_t)len) == 0;
}

/* For string literals only: their length is known at compile time. */
#define AT_CI(s, n, i, lit) at_ci_len((s), (n), (i), (lit), (Py_ssize_t)sizeof(lit) - 1)
#define AT_CS(s, n, i, lit) at_cs_len((s), (n), (i), (lit), (Py_ssize_t)sizeof(lit) - 1)
#define WORD_END(s, n, i, lit) (AT_CI(s, n, i, lit) ? (i) + (Py_ssize_t)sizeof(lit) - 1 : -1)

static inline int is_name_char(unsigned char c) {
    c = lower(c);
    return is_lower_letter(c) || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

/* Where the field trigger word starting at s[i] ends, or -1 if none starts there; `c` is
 * lower(s[i]). `sign` counts only when no letter follows it, or as `signature`:
 * sign(?:ature)?(?![a-z]). Words sharing a prefix: the shorter one decides (same name). */
static Py_ssize_t field_word_end(const unsigned char *s, Py_ssize_t n, Py_ssize_t i,
                                 unsigned char c) {
    Py_ssize_t end;
    switch (c) {
    case 'a':
        return WORD_END(s, n, i, "auth");
    case 'c':
        end = WORD_END(s, n, i, "cookie");
        return end >= 0 ? end : WORD_END(s, n, i, "credential");
    case 'k':
        return WORD_END(s, n, i, "key");
    case 'm':
        return WORD_END(s, n, i, "mnemonic");
    case 'p':
        end = WORD_END(s, n, i, "passw");
        if (end < 0) {
            end = WORD_END(s, n, i, "passphrase");
        }
        return end >= 0 ? end : WORD_END(s, n, i, "pwd");
    case 't':
        end = WORD_END(s, n, i, "token");
        return end >= 0 ? end : WORD_END(s, n, i, "ticket");
    case 's':
        end = WORD_END(s, n, i, "secret");
        if (end >= 0 || !AT_CI(s, n, i, "sign")) {
            return end;
        }
        end = i + 4;
        if (AT_CI(s, n, end, "ature")) {
            end += 5;
        }
        return end < n && is_lower_letter(lower(s[end])) ? -1 : end;
    default:
        return -1;
    }
}

/* Is s[from..] the rest of a field name, an optional closing quote, blanks, then `=` or `:`?
 * Sets *name_end to where the name ends. */
static int value_follows(const unsigned char *s, Py_ssize_t n, Py_ssize_t from,
                         Py_ssize_t *name_end) {
    Py_ssize_t j = from;
    while (j < n && is_name_char(s[j])) {
        j++;
    }
    *name_end = j;
    if (j < n && (s[j] == '"' || s[j] == '\'')) {
        j++;
    }
    while (j < n && (s[j] == ' ' || s[j] == '\t')) {
        j++;
    }
    return j < n && (s[j] == ':' || s[j] == '=');
}

/* The literal triggers of the other rules that start at s[i]; `c` is lower(s[i]). */
static int literal_rules(const unsigned char *s, Py_ssize_t n, Py_ssize_t i, unsigned char c) {
    switch (c) {
    case '-':
        return AT_CI(s, n, i, "-----begin") ? PEM : 0;
    case ':':
        return AT_CI(s, n, i, "://") ? URL_PASSWORD : 0;
    case 'a':
        return AT_CS(s, n, i, "AKIA") || AT_CS(s, n, i, "ASIA") ? AWS : 0;
    case 'b':
        return (AT_CI(s, n, i, "bearer") ? BEARER : 0) | (AT_CI(s, n, i, "basic") ? BASIC : 0);
    case 'e':
        return AT_CI(s, n, i, "eyj") ? JWT : 0;
    case 'h':
        return AT_CI(s, n, i, "hooks.slack") ? SLACK : 0;
    case 'x':
        return AT_CI(s, n, i, "xox") || AT_CI(s, n, i, "xapp-") ? SLACK : 0;
    default:
        return 0;
    }
}

/* Character classes, so the common character costs one table read and three tests. */
enum { C_HEX = 1, C_WORD = 2, C_START = 4 };
static unsigned char classes[256];

/* The first two characters (lower-cased) of every trigger, as a bitmap indexed by
 * (first << 8 | second): most letters that begin a trigger ("s", "t", "a") are not followed by
 * one of its second letters, and this test is cheaper than the switches. `@` stands alone. */
static const char *const trigger_words[] = {
    "-----begin", "://", "akia", "asia", "bearer", "basic", "eyj", "hooks.slack", "xox", "xapp-",
    "auth", "cookie", "credential", "key", "mnemonic", "passw", "passphrase", "pwd", "token",
    "ticket", "secret", "sign",
};
static unsigned char pairs[256 * 256 / 8];

static inline int pair_starts_trigger(unsigned char first, unsigned char second) {
    unsigned int bit = (unsigned int)first << 8 | second;
    return pairs[bit >> 3] & (1u << (bit & 7));
}

static void init_tables(void) {
    for (int c = 0; c < 256; c++) {
        lowered[c] = (unsigned char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
    }
    for (size_t w = 0; w < sizeof(trigger_words) / sizeof(trigger_words[0]); w++) {
        unsigned int bit = (unsigned char)trigger_words[w][0] << 8 |
                           (unsigned char)trigger_words[w][1];
        pairs[bit >> 3] |= (unsigned char)(1u << (bit & 7));
        unsigned char first = (unsigned char)trigger_words[w][0];
        classes[first] |= C_START;
        if (is_lower_letter(first)) {
            classes[first - 'a' + 'A'] |= C_START;
        }
    }
    classes['@'] |= C_START;
    for (int c = 0; c < 256; c++) {
        classes[c] |= (unsigned char)((is_hex((unsigned char)c) ? C_HEX : 0) |
                                      (is_lower_letter((unsigned char)c) || c == ' ' ? C_WORD : 0));
    }
}

static long scan(const unsigned char *s, Py_ssize_t n) {
    long found = 0;
    int at_sign = 0, word_run_seen = 0;
    Py_ssize_t hex_run = 0, word_run = 0, spaces = 0;
    /* A trigger inside a name already measured ends where that name ends: skip it, so a line
     * of "keykeykey..." costs O(n), not O(n^2). */
    Py_ssize_t measured = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i], class = classes[c];
        if (class & C_HEX) {
            if (++hex_run >= HEX_RUN) {
                found |= HEX_KEY;
            }
        } else {
            if (c == ':' && hex_run >= TELEGRAM_HEAD) {
                found |= TELEGRAM;
            }
            hex_run = 0;
        }
        /* Raw lower-case letters and spaces, not lower-cased: mnemonics are lower case. */
        if (class & C_WORD) {
            word_run_seen |= ++word_run >= WORD_RUN_MIN;
            spaces += c == ' ';
        } else {
            word_run = 0;
        }
        if (!(class & C_START)) {
            continue;
        }
        if (c == '@') {
            at_sign = 1;
            continue;
        }
        unsigned char lc = lower(c);
        if (i + 1 >= n || !pair_starts_trigger(lc, lower(s[i + 1]))) {
            continue;
        }
        found |= literal_rules(s, n, i, lc);
        if (i >= measured && !(found & FIELD)) {
            Py_ssize_t word_end = field_word_end(s, n, i, lc);
            if (word_end >= 0 && value_follows(s, n, word_end, &measured)) {
                found |= FIELD;
            }
        }
    }
    if (!at_sign) {
        found &= ~URL_PASSWORD;
    }
    if (n < TELEGRAM_MIN_LEN) {
        found &= ~(TELEGRAM | HEX_KEY);
    }
    if (word_run_seen && spaces >= MNEMONIC_SPACES) {
        found |= MNEMONIC;
    }
    return found;
}

static PyObject *rules(PyObject *module, PyObject *text) {
    (void)module;
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "rules() takes a str");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text)) {
        PyErr_SetString(PyExc_ValueError, "rules() takes ASCII text only");
        return NULL;
    }
    return PyLong_FromLong(scan(PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text)));
}

static PyMethodDef methods[] = {
    {"rules", rules, METH_O, "Bit mask of the redaction rules that could match ASCII text."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tradeguard.secrets._guard",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__guard(void) {
    init_tables();
    return PyModule_Create(&module);
}
