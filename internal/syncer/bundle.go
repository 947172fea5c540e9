package syncer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
)

// envelope is what the syncer needs from a search Bundle besides its entries (which fhir.Scan
// reads): the type, the next link and the server's time.
type envelope struct {
	resourceType string
	bundleType   string
	lastUpdated  string
	next         string
}

// parseEnvelope reads the top-level fields of a Bundle. It stops at "entry" when link and meta
// came before it (the usual order), so the entries are not decoded twice.
func parseEnvelope(body []byte) (envelope, error) {
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return env, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return env, errors.New("not a JSON object")
	}
	var sawLink, sawMeta bool
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return env, err
		}
		key, _ := kt.(string)
		switch key {
		case "resourceType":
			err = dec.Decode(&env.resourceType)
		case "type":
			err = dec.Decode(&env.bundleType)
		case "meta":
			var m struct {
				LastUpdated string `json:"lastUpdated"`
			}
			err = dec.Decode(&m)
			env.lastUpdated, sawMeta = m.LastUpdated, true
		case "link":
			var links []struct {
				Relation string `json:"relation"`
				URL      string `json:"url"`
			}
			err = dec.Decode(&links)
			for _, l := range links {
				if l.Relation == "next" && env.next == "" {
					env.next = l.URL
				}
			}
			sawLink = true
		case "entry":
			if sawLink && sawMeta {
				return env, nil
			}
			var skip json.RawMessage
			err = dec.Decode(&skip)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				continue // a wrongly shaped field: ignore it, like encoding/json does
			}
			return env, err
		}
	}
	return env, nil
}

// serverTime is the cursor a page gives for the next sync: Bundle.meta.lastUpdated, else the Date
// header minus one second (it has whole-second precision and the search ran within that second).
func serverTime(env envelope, h http.Header) string {
	if env.lastUpdated != "" {
		if _, _, ok := parseInstant(env.lastUpdated); ok {
			return env.lastUpdated
		}
	}
	if t, err := http.ParseTime(h.Get("Date")); err == nil {
		return t.Add(-time.Second).UTC().Format(time.RFC3339)
	}
	return ""
}

// parseInstant accepts a FHIR instant (a dateTime with time and zone).
func parseInstant(s string) (time.Time, string, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, "", false
	}
	return t, s, true
}

// capability is what the CapabilityStatement tells the syncer.
type capability struct {
	known      bool            // a CapabilityStatement with a resource list was read
	everything bool            // Patient/$everything is offered
	searchable map[string]bool // types searchable by patient
	listed     map[string]bool // every type listed
}

func parseCapability(body []byte) (capability, error) {
	var cs struct {
		ResourceType string `json:"resourceType"`
		Rest         []struct {
			Mode     string `json:"mode"`
			Resource []struct {
				Type        string `json:"type"`
				Interaction []struct {
					Code string `json:"code"`
				} `json:"interaction"`
				SearchParam []struct {
					Name string `json:"name"`
				} `json:"searchParam"`
				Operation []struct {
					Name       string `json:"name"`
					Definition string `json:"definition"`
				} `json:"operation"`
			} `json:"resource"`
			Operation []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"operation"`
		} `json:"rest"`
	}
	c := capability{searchable: map[string]bool{}, listed: map[string]bool{}}
	if err := json.Unmarshal(body, &cs); err != nil {
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			return c, fmt.Errorf("the CapabilityStatement is not valid JSON")
		}
	}
	if cs.ResourceType != "CapabilityStatement" {
		return c, fmt.Errorf("the server's metadata is not a CapabilityStatement")
	}
	isEverything := func(name, def string) bool {
		name = strings.TrimPrefix(name, "$")
		return name == "everything" || name == "patient-everything" || strings.HasSuffix(def, "/Patient-everything")
	}
	for _, r := range cs.Rest {
		if r.Mode != "" && r.Mode != "server" {
			continue
		}
		for _, res := range r.Resource {
			if !fhir.KnownType(res.Type) {
				continue
			}
			c.known = true
			c.listed[res.Type] = true
			search := slices.ContainsFunc(res.Interaction, func(i struct {
				Code string `json:"code"`
			}) bool {
				return i.Code == "search-type"
			})
			byPatient := len(res.SearchParam) == 0 || slices.ContainsFunc(res.SearchParam, func(p struct {
				Name string `json:"name"`
			}) bool {
				return p.Name == "patient" || p.Name == "subject"
			})
			if search && (byPatient || res.Type == "Patient") {
				c.searchable[res.Type] = true
			}
			if res.Type == "Patient" {
				for _, op := range res.Operation {
					if isEverything(op.Name, op.Definition) {
						c.everything = true
					}
				}
			}
		}
		for _, op := range r.Operation {
			if isEverything(op.Name, op.Definition) && strings.Contains(op.Definition, "Patient") {
				c.everything = true
			}
		}
	}
	return c, nil
}
