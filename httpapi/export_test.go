package httpapi

import "github.com/callsignhq/callsign"

// DecodeBatch exposes decodeBatch to the external tests: the events and,
// per event, whether its time failed to parse.
func DecodeBatch(data []byte) ([]callsign.EventJSON, []bool, error) {
	ws, err := decodeBatch(data)
	if err != nil {
		return nil, nil, err
	}
	evs, bad := make([]callsign.EventJSON, len(ws)), make([]bool, len(ws))
	for i, w := range ws {
		evs[i], bad[i] = w.EventJSON, w.badTime
	}
	return evs, bad, nil
}
