package people

import "context"

// withDeceased marks the people whose records say they died.
func (s *Service) withDeceased(ctx context.Context, list []Profile) error {
	if len(list) == 0 {
		return nil
	}
	dead, err := s.store.Deceased(ctx)
	if err != nil {
		return err
	}
	for i := range list {
		if v, ok := dead[list[i].ID]; ok {
			list[i].Deceased = v
		}
	}
	return nil
}
