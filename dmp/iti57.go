package dmp

import (
	"fmt"
)

// UpdateDocumentSet is an ITI-57 request (TD3.3): a submission set with
// new versions of document entries (masking, visibility: TD3.3a/b) and/or
// availability status changes (archive, unarchive, delete: TD3.3c/d).
type UpdateDocumentSet struct {
	SubmissionSet
	Updates       []MetadataUpdate
	StatusChanges []StatusChange
	// Associations holds any other association, written after the
	// generated ones and given back as read.
	Associations []Association
}

// MetadataUpdate is a new version of a document entry: a new id, the
// document's LogicalID as lid, every other metadata copied from the TD3.1
// answer with the changed confidentiality codes. PreviousVersion is the
// version it replaces (the entry's VersionInfo versionName); it travels in
// the HasMember association from the submission set.
type MetadataUpdate struct {
	Entry           DocumentEntry
	PreviousVersion string
	// AssociationID is the id of the generated HasMember association;
	// empty means numbered by the builder.
	AssociationID string
}

// StatusChange is an UpdateAvailabilityStatus association: the entry
// (Target, its entryUUID) goes from Original to New.
type StatusChange struct {
	ID       string // empty means numbered by the builder
	Target   string
	Original string
	New      string
}

// Archive, Unarchive and Delete are the status changes of TD3.3d and TD3.3c.
func Archive(entryUUID string) StatusChange {
	return StatusChange{Target: entryUUID, Original: StatusApproved, New: StatusArchived}
}

// Unarchive brings an archived document back to Approved.
func Unarchive(entryUUID string) StatusChange {
	return StatusChange{Target: entryUUID, Original: StatusArchived, New: StatusApproved}
}

// Delete withdraws a document ("dépublier"); from is its current status,
// Approved or Archived.
func Delete(entryUUID, from string) StatusChange {
	return StatusChange{Target: entryUUID, Original: from, New: StatusDeleted}
}

// associations returns the associations the request carries, generated
// ones first.
func (u *UpdateDocumentSet) associations() []Association {
	out := make([]Association, 0, len(u.Updates)+len(u.StatusChanges)+len(u.Associations))
	for _, m := range u.Updates {
		a := HasMember(m.AssociationID, u.SubmissionSet.ID, m.Entry.ID)
		a.Slots = append(a.Slots, Slot{SlotPreviousVersion, []string{m.PreviousVersion}})
		out = append(out, a)
	}
	for _, c := range u.StatusChanges {
		out = append(out, Association{ID: c.ID, Type: AssocUpdateAvailabilityStatus, Source: u.SubmissionSet.ID, Target: c.Target,
			Slots: []Slot{{SlotOriginalStatus, []string{c.Original}}, {SlotNewStatus, []string{c.New}}}})
	}
	return append(out, u.Associations...)
}

// BuildUpdateDocumentSet builds the lcm:SubmitObjectsRequest body of an
// ITI-57 request.
func BuildUpdateDocumentSet(u UpdateDocumentSet) ([]byte, error) {
	if err := u.SubmissionSet.Validate(); err != nil {
		return nil, err
	}
	if len(u.Updates)+len(u.StatusChanges)+len(u.Associations) == 0 {
		return nil, fmt.Errorf("dmp: update %q changes nothing", u.SubmissionSet.ID)
	}
	for i := range u.Updates {
		m := &u.Updates[i]
		if err := m.Entry.Validate(); err != nil {
			return nil, err
		}
		if m.Entry.LogicalID == "" || m.PreviousVersion == "" {
			return nil, fmt.Errorf("dmp: new version of %q needs the logical id and the previous version", m.Entry.ID)
		}
	}
	for _, c := range u.StatusChanges {
		if c.Target == "" || c.Original == "" || c.New == "" {
			return nil, fmt.Errorf("dmp: status change needs a target, an original and a new status")
		}
	}
	assocs := u.associations()
	for i := range assocs {
		if err := checkAssociation(&assocs[i]); err != nil {
			return nil, err
		}
	}
	var w ebWriter
	w.start("lcm:SubmitObjectsRequest", "xmlns:lcm", NSLCM, "xmlns:rim", NSRIM)
	w.start("rim:RegistryObjectList")
	w.registryPackage(&u.SubmissionSet)
	for i := range u.Updates {
		w.extrinsicObject(&u.Updates[i].Entry)
	}
	for i := range assocs {
		w.association(&assocs[i])
	}
	w.end("rim:RegistryObjectList")
	w.end("lcm:SubmitObjectsRequest")
	return w.bytes()
}

// ParseUpdateDocumentSet reads an ITI-57 request. A HasMember association
// from the submission set to an entry of the request, with a
// PreviousVersion slot, gives that entry's MetadataUpdate; every
// UpdateAvailabilityStatus association from the submission set is a
// StatusChange; other associations, and entries no association versions,
// are kept as read (Associations, and Updates without PreviousVersion) for
// the registry to refuse.
func ParseUpdateDocumentSet(envelope []byte) (*UpdateDocumentSet, error) {
	r, err := decodeXDSBody[lcmSubmitObjectsRequest](envelope)
	if err != nil {
		return nil, err
	}
	objs, err := r.List.decode()
	if err != nil {
		return nil, err
	}
	ss, err := objs.oneSubmissionSet()
	if err != nil {
		return nil, err
	}
	u := &UpdateDocumentSet{SubmissionSet: ss}
	index := make(map[string]int, len(objs.Entries))
	for i, e := range objs.Entries {
		index[e.ID] = i
		u.Updates = append(u.Updates, MetadataUpdate{Entry: e})
	}
	for _, a := range objs.Associations {
		switch {
		case a.Type == AssocUpdateAvailabilityStatus && a.Source == ss.ID:
			u.StatusChanges = append(u.StatusChanges, StatusChange{ID: a.ID, Target: a.Target,
				Original: a.SlotValue(SlotOriginalStatus), New: a.SlotValue(SlotNewStatus)})
			continue
		case a.Type == AssocHasMember && a.Source == ss.ID && a.SlotValue(SlotPreviousVersion) != "":
			if i, ok := index[a.Target]; ok && u.Updates[i].PreviousVersion == "" {
				u.Updates[i].PreviousVersion = a.SlotValue(SlotPreviousVersion)
				u.Updates[i].AssociationID = a.ID
				continue
			}
		}
		u.Associations = append(u.Associations, a)
	}
	return u, nil
}
