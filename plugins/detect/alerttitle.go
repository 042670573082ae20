package detect

import (
	"encoding/json"
	"fmt"
	"strings"
)

// titleTemplate is a compiled AlertTitle, Panther's title of a simple
// detection: text in which each {KeyPath} placeholder ("{userName}",
// "{userIdentity.arn}") is replaced by the event's value there.
type titleTemplate []titlePart

// titlePart is literal text, or a placeholder when path is set.
type titlePart struct {
	text string
	path []string
	get  getter
}

// compileTitleTemplate compiles an AlertTitle. A "{" without a "}" after
// it is text.
func compileTitleTemplate(src string) (titleTemplate, error) {
	var t titleTemplate
	for {
		open := strings.IndexByte(src, '{')
		if open < 0 {
			break
		}
		size := strings.IndexByte(src[open+1:], '}') // of the name
		if size < 0 {
			break
		}
		name := src[open+1 : open+1+size]
		path, err := keyPathSteps(name)
		if err != nil {
			return nil, fmt.Errorf("placeholder {%s}: %w", name, err)
		}
		t = append(t, titlePart{text: src[:open]}, titlePart{path: path, get: pathGetter(path)})
		src = src[open+1+size+1:]
	}
	return append(t, titlePart{text: src}), nil
}

// render is the title for the event. A placeholder whose key the event
// lacks, or holds null, is left empty.
func (t titleTemplate) render(event map[string]any) string {
	var b strings.Builder
	for _, p := range t {
		if p.get == nil {
			b.WriteString(p.text)
			continue
		}
		switch vals, _ := p.get(event); len(vals) {
		case 0:
		case 1:
			b.WriteString(placeholderText(vals[0]))
		default: // a [*] path's values
			b.WriteString(placeholderText(vals))
		}
	}
	return b.String()
}

// placeholderText is a value as a title shows it: a string as it is, null
// as nothing, anything else as JSON.
func placeholderText(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
