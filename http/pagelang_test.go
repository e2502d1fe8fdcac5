package http

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func TestAcceptedLanguage(t *testing.T) {
	tests := map[string]string{
		"":                               "en",
		"zh-CN":                          "zh-CN",
		"zh-CN,zh;q=0.9,en;q=0.8":        "zh-CN",
		"zh-TW":                          "zh-CN",
		"ZH":                             "zh-CN",
		"en-US,en;q=0.9,zh-CN;q=0.8":     "en",
		"en;q=0.5, zh;q=0.9":             "zh-CN",
		"fr-FR, de;q=0.8":                "en",
		"fr, zh-CN;q=0.3":                "zh-CN",
		"zh;q=0, en":                     "en",
		"*":                              "en",
		"zh;q=nonsense, en":              "en",
		"de, zh-Hans-CN;q=0.5, *;q=0.1":  "zh-CN",
		"en;q=0.8, zh-CN;q=0.8":          "en",
		"zhx, english, chinese, zh-CN-x": "zh-CN",
	}
	for header, want := range tests {
		if got := acceptedLanguage(header); got != want {
			t.Errorf("acceptedLanguage(%q) = %q, want %q", header, got, want)
		}
	}
}

// TestPageLanguages: the shell comes in the language Accept-Language asks
// for, the switch's cookie wins over it, caches are told so (Vary), and
// the two languages are two representations with their own ETags.
func TestPageLanguages(t *testing.T) {
	api := newTestAPI(t, nil)
	lang := regexp.MustCompile(`<html lang="([^"]+)">`)
	tests := []struct {
		name, acceptLang, cookie, want, says string
	}{
		{"no header", "", "", "en", "Buy now"},
		{"Chinese browser", "zh-CN,zh;q=0.9,en;q=0.8", "", "zh-CN", "立即抢购"},
		{"English browser", "en-GB,en;q=0.9", "", "en", "Buy now"},
		{"switch to English", "zh-CN", "en", "en", "Buy now"},
		{"switch to Chinese", "en-US", "zh-CN", "zh-CN", "立即抢购"},
		{"unknown cookie", "zh-CN", "fr", "zh-CN", "立即抢购"},
	}
	etags := map[string]string{}
	for _, tc := range tests {
		hdr := []string{"Accept-Language", tc.acceptLang}
		if tc.cookie != "" {
			hdr = append(hdr, "Cookie", langCookie+"="+tc.cookie)
		}
		w := api.call(t, "GET", "/sale/abc", "", hdr...)
		m := lang.FindStringSubmatch(w.Body.String())
		if w.Code != http.StatusOK || m == nil || m[1] != tc.want || w.Header().Get("Content-Language") != tc.want {
			t.Errorf("%s: %d, <html lang> %v, Content-Language %q; want 200, %s", tc.name, w.Code, m, w.Header().Get("Content-Language"), tc.want)
		}
		if !strings.Contains(w.Body.String(), tc.says) {
			t.Errorf("%s: the page does not say %q", tc.name, tc.says)
		}
		if vary := strings.Join(w.Header().Values("Vary"), ", "); !strings.Contains(vary, "Accept-Language") || !strings.Contains(vary, "Cookie") {
			t.Errorf("%s: Vary %q, want Accept-Language and Cookie", tc.name, vary)
		}
		if prev, ok := etags[tc.want]; ok && prev != w.Header().Get("ETag") {
			t.Errorf("%s: ETag %s differs from another %s answer's %s", tc.name, w.Header().Get("ETag"), tc.want, prev)
		}
		etags[tc.want] = w.Header().Get("ETag")
	}
	if etags["en"] == etags["zh-CN"] {
		t.Error("the English and Chinese shells share an ETag")
	}
	// The index too, and the switch offers the other language.
	w := api.call(t, "GET", "/", "", "Accept-Language", "zh-CN")
	if !strings.Contains(w.Body.String(), "打开秒杀活动") || !strings.Contains(w.Body.String(), `data-lang="en"`) {
		t.Errorf("the Chinese index lacks its heading or the switch to English:\n%s", w.Body)
	}
}

// TestPageText: text.js carries both languages with the same keys, and
// every error code the API can send has a sentence in each.
func TestPageText(t *testing.T) {
	api := newTestAPI(t, nil)
	js := api.call(t, "GET", "/assets/text.js", "").Body.String()
	raw, ok := strings.CutPrefix(js[strings.Index(js, "window.SeckillText = "):], "window.SeckillText = ")
	if !ok {
		t.Fatalf("text.js does not define window.SeckillText:\n%s", js)
	}
	var texts map[string]map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimSpace(raw), ";")), &texts); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range codes {
		want = append(want, c.code)
	}
	want = append(want, "invalid_request", "unavailable", "internal", "challenge_required", "challenge_failed",
		"challenge_expired", "challenge_used", "network")
	for _, lang := range languages {
		for _, code := range want {
			if s, _ := texts[lang]["err_"+code].(string); s == "" {
				t.Errorf("%s has no sentence for the error code %s", lang, code)
			}
		}
		if len(texts[lang]) != len(texts["en"]) {
			t.Errorf("%s has %d sentences, en %d", lang, len(texts[lang]), len(texts["en"]))
		}
	}
	cjk := regexp.MustCompile(`\p{Han}`)
	if s, _ := texts["zh-CN"]["err_sold_out"].(string); !cjk.MatchString(s) {
		t.Errorf("zh-CN sold_out is not Chinese: %q", s)
	}
}

// TestCatalogMissingKey: a sentence in one language only stops the start.
func TestCatalogMissingKey(t *testing.T) {
	fsys := fstest.MapFS{"page/text.json": {Data: []byte(`{"en":{"a":"A","b":"B"},"zh-CN":{"a":"甲"}}`)}}
	if _, err := loadCatalog(fsys); err == nil || !strings.Contains(err.Error(), "zh-CN lacks b") {
		t.Errorf("loadCatalog with a missing key: %v, want zh-CN lacks b", err)
	}
	fsys = fstest.MapFS{"page/text.json": {Data: []byte(`{"en":{"a":"A"},"zh-CN":{"a":"甲","c":"丙"}}`)}}
	if _, err := loadCatalog(fsys); err == nil || !strings.Contains(err.Error(), "en lacks c") {
		t.Errorf("loadCatalog with an extra key: %v, want en lacks c", err)
	}
}
